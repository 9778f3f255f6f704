
namespace Apex.Server.Storage;

/// <summary>The user's workload data and the analytics the tools compute over it, every query scoped to one user.</summary>
internal sealed class SqlWorkloadStore(Database db) : SqlStore(db), IWorkloadStore
{

    public async Task<WorkloadSummary> GetWorkloadSummaryAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        await using var connection = await Db.OpenAsync(cancellationToken);
        var totals = await connection.QuerySingleAsync($"""
            SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT),
                   CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), COALESCE(AVG(latency_ms), 0), COALESCE(SUM(cost), 0), MIN(ts), MAX(ts)
            FROM workload_calls WHERE {where}
            """, null, r => new WorkloadSummary(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetDouble(4), r.GetDouble(5), r.TimeOrNull(6), r.TimeOrNull(7), []),
            cancellationToken, parameters);
        // The column names come from this fixed list only.
        async Task<List<string>> DistinctAsync(string column) =>
            await connection.QueryAsync($"SELECT DISTINCT {column} FROM workload_calls WHERE {where} AND {column} IS NOT NULL ORDER BY {column}", null, r => r.GetString(0),
                cancellationToken, parameters);
        return totals! with
        {
            Models = await DistinctAsync("model"), Providers = await DistinctAsync("provider"), Features = await DistinctAsync("feature"), Teams = await DistinctAsync("team"),
        };
    }

    /// <summary>The WHERE clause of a filter: fixed fragments, every value a parameter.</summary>
    private static (string Sql, (string, object?)[] Parameters) Where(string userId, WorkloadFilter filter)
    {
        var sql = new System.Text.StringBuilder("user_id = @u");
        var parameters = new List<(string, object?)> { ("@u", userId) };
        void Add(string fragment, string name, object? value)
        {
            if (value is null) return;
            sql.Append(" AND ").Append(fragment);
            parameters.Add((name, value));
        }
        Add("model = @fmodel", "@fmodel", filter.Model);
        Add("feature = @ffeature", "@ffeature", filter.Feature);
        Add("team = @fteam", "@fteam", filter.Team);
        Add("ts >= @ffrom", "@ffrom", filter.From.ToUnixMs());
        Add("ts < @fto", "@fto", filter.To.ToUnixMs());
        return (sql.ToString(), [.. parameters]);
    }

    public Task InsertWorkloadCallsAsync(string userId, IReadOnlyList<WorkloadCall> calls, bool replaceExisting, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            if (calls.Any(call => call.UserId != userId)) throw new ArgumentException("Every row must belong to the importing user.", nameof(calls));
            if (replaceExisting) await c.ExecuteAsync("DELETE FROM workload_calls WHERE user_id = @u", t, cancellationToken, ("@u", userId));
            // One transaction for the whole upload: a failure leaves nothing half-imported.
            await using var insert = c.Command("""
                INSERT INTO workload_calls (id, user_id, batch_id, ts, provider, model, prompt_tokens, completion_tokens, latency_ms, status, cost, prompt_hash, feature, team)
                VALUES (@id, @u, @b, @ts, @p, @m, @pt, @ct, @l, @s, @c, @h, @f, @team)
                """, t, ("@id", ""), ("@u", ""), ("@b", ""), ("@ts", 0L), ("@p", ""), ("@m", ""), ("@pt", 0L), ("@ct", 0L), ("@l", 0.0), ("@s", ""),
                ("@c", 0.0), ("@h", null), ("@f", null), ("@team", null));
            foreach (var call in calls)
            {
                object?[] values = [call.Id, call.UserId, call.BatchId, call.Timestamp.ToUnixMs(), call.Provider, call.Model, call.PromptTokens, call.CompletionTokens,
                    call.LatencyMs, call.Status, call.Cost, call.PromptHash, call.Feature, call.Team];
                for (var i = 0; i < values.Length; i++) insert.Parameters[i].Value = values[i] ?? DBNull.Value;
                await insert.ExecuteNonQueryAsync(cancellationToken);
            }
            return calls.Count;
        }, cancellationToken);

    public Task<int> DeleteWorkloadAsync(string userId, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync("DELETE FROM workload_calls WHERE user_id = @u", t, cancellationToken, ("@u", userId)), cancellationToken);

    public async Task<IReadOnlyList<ModelStats>> GetModelStatsAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        return await ReadAsync($"""
            SELECT model, MIN(provider), COUNT(*), CAST(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT),
                   COALESCE(SUM(cost), 0), AVG(latency_ms)
            FROM workload_calls WHERE {where} GROUP BY model ORDER BY COALESCE(SUM(cost), 0) DESC, model
            """, r => new ModelStats(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.GetDouble(6), r.GetDouble(7)),
            cancellationToken, parameters);
    }

    public async Task<IReadOnlyList<CostGroup>> GetCostBreakdownAsync(string userId, string groupBy, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        // The grouping expression comes from this fixed list only, never from input.
        var key = groupBy switch
        {
            "model" => "model",
            "feature" => "COALESCE(feature, '(none)')",
            "team" => "COALESCE(team, '(none)')",
            "day" => "CAST(ts / 86400000 AS BIGINT)",
            _ => throw new ArgumentOutOfRangeException(nameof(groupBy), groupBy, "model, day, feature or team"),
        };
        var (where, parameters) = Where(userId, filter);
        var rows = await ReadAsync($"SELECT {key}, COUNT(*), COALESCE(SUM(cost), 0) FROM workload_calls WHERE {where} GROUP BY {key} ORDER BY {(groupBy == "day" ? "1" : "3 DESC, 1")}",
            r => new CostGroup(groupBy == "day" ? DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0) * 86_400_000).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) : r.GetString(0),
                r.GetInt64(1), r.GetDouble(2)), cancellationToken, parameters);
        return rows;
    }

    public async Task<IReadOnlyDictionary<string, double[]>> GetLatenciesByModelAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        var rows = await ReadAsync($"SELECT model, latency_ms FROM workload_calls WHERE {where} ORDER BY model, latency_ms",
            r => (Model: r.GetString(0), Latency: r.GetDouble(1)), cancellationToken, parameters);
        return rows.GroupBy(r => r.Model).ToDictionary(g => g.Key, g => g.Select(r => r.Latency).ToArray());
    }

    public async Task<IReadOnlyList<(string Model, string Status, long Calls)>> GetErrorCountsAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        return await ReadAsync($"SELECT model, status, COUNT(*) FROM workload_calls WHERE {where} AND status <> 'ok' GROUP BY model, status ORDER BY 3 DESC, 1, 2",
            r => (r.GetString(0), r.GetString(1), r.GetInt64(2)), cancellationToken, parameters);
    }

    public async Task<IReadOnlyList<RepeatedPrompt>> GetRepeatedPromptsAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        return await ReadAsync($"""
            SELECT prompt_hash, model, COUNT(*), COALESCE(SUM(cost), 0), COALESCE(MIN(cost), 0)
            FROM workload_calls WHERE {where} AND prompt_hash IS NOT NULL AND status = 'ok'
            GROUP BY prompt_hash, model HAVING COUNT(*) > 1 ORDER BY 4 DESC, 1, 2
            """, r => new RepeatedPrompt(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetDouble(3), r.GetDouble(4)), cancellationToken, parameters);
    }

    public async Task<IReadOnlyList<HourlyCost>> GetHourlyCostAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        return await ReadAsync($"SELECT CAST(ts / 3600000 AS BIGINT), COUNT(*), COALESCE(SUM(cost), 0) FROM workload_calls WHERE {where} GROUP BY 1 ORDER BY 1",
            r => new HourlyCost(DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0) * 3_600_000), r.GetInt64(1), r.GetDouble(2)), cancellationToken, parameters);
    }
}
