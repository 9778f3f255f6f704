using System.Data.Common;
using System.Globalization;

namespace Apex.Server.Storage;

/// <summary>The user's workload data and the analytics the tools compute over it, every query scoped to one user.</summary>
internal sealed class SqlWorkloadStore(Database db) : SqlStore(db), IWorkloadStore
{
    // Values are bounded at import; the sums clamp to the same bounds so that rows stored before them cannot overflow a figure.
    private static readonly string Cost = Clamp("cost", WorkloadBounds.MaxCostUsd.ToString("0.0", CultureInfo.InvariantCulture));
    private static readonly string PromptTokens = Clamp("prompt_tokens", WorkloadBounds.MaxTokens.ToString(CultureInfo.InvariantCulture));
    private static readonly string CompletionTokens = Clamp("completion_tokens", WorkloadBounds.MaxTokens.ToString(CultureInfo.InvariantCulture));
    private static readonly string Latency = Clamp("latency_ms", WorkloadBounds.MaxLatencyMs.ToString("0.0", CultureInfo.InvariantCulture));

    private static string Clamp(string column, string bound) => $"CASE WHEN {column} > {bound} THEN {bound} ELSE {column} END";

    public async Task<WorkloadSummary> GetWorkloadSummaryAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        await using var connection = await Db.OpenAsync(cancellationToken);
        var totals = await connection.QuerySingleAsync($"""
            SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM({PromptTokens}), 0) AS BIGINT),
                   CAST(COALESCE(SUM({CompletionTokens}), 0) AS BIGINT), COALESCE(AVG({Latency}), 0), COALESCE(SUM({Cost}), 0), MIN(ts), MAX(ts)
            FROM workload_calls WHERE {where}
            """, null, r => new WorkloadSummary(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetDouble(4), r.GetDouble(5), r.TimeOrNull(6), r.TimeOrNull(7), []),
            cancellationToken, parameters);
        // No rows, no names: a user without data (every new one) costs one statement, not five.
        if (totals!.Calls == 0) return totals;
        // The four name lists in one round trip; the column names come from this fixed list only.
        string[] columns = ["model", "provider", "feature", "team"];
        var names = await connection.QueryAsync(string.Join(" UNION ALL ", columns.Select((column, i) =>
                $"SELECT {i}, v FROM (SELECT DISTINCT {column} AS v FROM workload_calls WHERE {where} AND {column} IS NOT NULL) d{i}")) + " ORDER BY 1, 2",
            null, r => (Column: r.GetInt32(0), Name: r.GetString(1)), cancellationToken, parameters);
        List<string> Of(int column) => [.. names.Where(n => n.Column == column).Select(n => n.Name)];
        return totals with { Models = Of(0), Providers = Of(1), Features = Of(2), Teams = Of(3) };
    }

    /// <summary>The WHERE clause of a filter: fixed fragments, every value a parameter.</summary>
    private static (string Sql, (string, object?)[] Parameters) Where(string userId, WorkloadFilter filter)
    {
        // Only committed batches: a staging, aborted or replaced batch's rows are invisible to every figure.
        var sql = new System.Text.StringBuilder("user_id = @u AND batch_id IN (SELECT id FROM workload_batches WHERE user_id = @u AND state = 'committed')");
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

    public async Task<UploadStart> BeginUploadAsync(string userId, string batchId, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        try
        {
            return await Db.WriteAsync<UploadStart>(async (c, t) =>
            {
                // An upload whose node died (its lease ran out) gives up the slot; its rows stay invisible until purged.
                await c.ExecuteAsync("UPDATE workload_batches SET state = 'aborted' WHERE user_id = @u AND state = 'staging' AND lease_until < @now", t, cancellationToken,
                    ("@u", userId), ("@now", now.ToUnixMs()));
                if (await c.ScalarAsync("SELECT COUNT(*) FROM workload_batches WHERE user_id = @u AND state = 'staging'", t, cancellationToken, ("@u", userId)) > 0)
                    return new UploadStart.Busy();
                // Two nodes racing past the count meet at the partial unique index: the second waits for the first, then fails below.
                await c.ExecuteAsync("INSERT INTO workload_batches (user_id, id, state, row_count, created_at, lease_until) VALUES (@u, @b, 'staging', 0, @now, @lease)", t,
                    cancellationToken, ("@u", userId), ("@b", batchId), ("@now", now.ToUnixMs()), ("@lease", leaseUntil.ToUnixMs()));
                return new UploadStart.Started(await StoredRowsAsync(c, t, userId, cancellationToken));
            }, cancellationToken);
        }
        catch (Exception ex) when (Db.IsUniqueViolation(ex))
        {
            return new UploadStart.Busy();
        }
    }

    private static async Task<long> StoredRowsAsync(DbConnection c, DbTransaction? t, string userId, CancellationToken cancellationToken) =>
        await c.ScalarAsync("SELECT COALESCE(SUM(row_count), 0) FROM workload_batches WHERE user_id = @u AND state = 'committed'", t, cancellationToken, ("@u", userId)) ?? 0;

    public Task<bool> StageWorkloadCallsAsync(string userId, string batchId, IReadOnlyList<WorkloadCall> calls, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        if (calls.Any(call => call.UserId != userId || call.BatchId != batchId)) throw new ArgumentException("Every row must belong to the importing user and batch.", nameof(calls));
        return Db.WriteBulkAsync(async (c, t) =>
        {
            var staging = await c.ExecuteAsync("UPDATE workload_batches SET row_count = row_count + @n, lease_until = @lease WHERE user_id = @u AND id = @b AND state = 'staging'",
                t, cancellationToken, ("@n", (long)calls.Count), ("@lease", leaseUntil.ToUnixMs()), ("@u", userId), ("@b", batchId));
            if (staging == 0) return false;
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
            return true;
        }, cancellationToken);
    }

    public Task<UploadCommit> CommitUploadAsync(string userId, string batchId, bool replaceExisting, long maxRowsPerUser, CancellationToken cancellationToken) =>
        Db.WriteAsync<UploadCommit>(async (c, t) =>
        {
            var rows = await c.ScalarAsync($"SELECT row_count FROM workload_batches WHERE user_id = @u AND id = @b AND state = 'staging' {Db.LockRows(skipLocked: false)}", t,
                cancellationToken, ("@u", userId), ("@b", batchId));
            if (rows is not { } staged) return new UploadCommit.Lost();
            var stored = replaceExisting ? 0 : await StoredRowsAsync(c, t, userId, cancellationToken);
            if (stored + staged > maxRowsPerUser)
            {
                await SetStateAsync(c, t, userId, batchId, "aborted", cancellationToken);
                return new UploadCommit.OverRowLimit(stored, maxRowsPerUser);
            }
            if (replaceExisting)
                await c.ExecuteAsync("UPDATE workload_batches SET state = 'superseded' WHERE user_id = @u AND state = 'committed'", t, cancellationToken, ("@u", userId));
            await SetStateAsync(c, t, userId, batchId, "committed", cancellationToken);
            return new UploadCommit.Committed(stored + staged);
        }, cancellationToken);

    public Task AbortUploadAsync(string userId, string batchId, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => SetStateAsync(c, t, userId, batchId, "aborted", cancellationToken), cancellationToken);

    private static Task<int> SetStateAsync(DbConnection c, DbTransaction? t, string userId, string batchId, string state,
        CancellationToken cancellationToken) =>
        c.ExecuteAsync("UPDATE workload_batches SET state = @state, lease_until = NULL WHERE user_id = @u AND id = @b AND state = 'staging'", t, cancellationToken,
            ("@state", state), ("@u", userId), ("@b", batchId));

    public async Task<long> PurgeWorkloadAsync(string userId, int chunkRows, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(chunkRows);
        long deleted = 0;
        while (true)
        {
            // One chunk per transaction, so that a large purge lets other writes through like an upload does.
            var (rows, done) = await Db.WriteBulkAsync(async (c, t) =>
            {
                var rows = await c.ExecuteAsync("""
                    DELETE FROM workload_calls WHERE id IN (SELECT id FROM workload_calls WHERE user_id = @u
                        AND batch_id IN (SELECT id FROM workload_batches WHERE user_id = @u AND state IN ('aborted', 'superseded')) LIMIT @n)
                    """, t, cancellationToken, ("@u", userId), ("@n", chunkRows));
                if (rows == chunkRows) return (rows, false);
                await c.ExecuteAsync("""
                    DELETE FROM workload_batches WHERE user_id = @u AND state IN ('aborted', 'superseded')
                        AND NOT EXISTS (SELECT 1 FROM workload_calls w WHERE w.user_id = @u AND w.batch_id = workload_batches.id)
                    """, t, cancellationToken, ("@u", userId));
                return (rows, true);
            }, cancellationToken);
            deleted += rows;
            if (done) return deleted;
        }
    }

    public async Task<long> DeleteWorkloadAsync(string userId, int chunkRows, CancellationToken cancellationToken)
    {
        await Db.WriteAsync((c, t) => c.ExecuteAsync("UPDATE workload_batches SET state = 'superseded' WHERE user_id = @u AND state = 'committed'", t, cancellationToken,
            ("@u", userId)), cancellationToken);
        return await PurgeWorkloadAsync(userId, chunkRows, cancellationToken);
    }

    public async Task<IReadOnlyList<ModelStats>> GetModelStatsAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        return await ReadAsync($"""
            SELECT model, MIN(provider), COUNT(*), CAST(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM({PromptTokens}) AS BIGINT), CAST(SUM({CompletionTokens}) AS BIGINT),
                   COALESCE(SUM({Cost}), 0), AVG({Latency})
            FROM workload_calls WHERE {where} GROUP BY model ORDER BY COALESCE(SUM({Cost}), 0) DESC, model
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
        var rows = await ReadAsync($"SELECT {key}, COUNT(*), COALESCE(SUM({Cost}), 0) FROM workload_calls WHERE {where} GROUP BY {key} ORDER BY {(groupBy == "day" ? "1" : "3 DESC, 1")}",
            r => new CostGroup(groupBy == "day" ? DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0) * 86_400_000).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) : r.GetString(0),
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
            SELECT prompt_hash, model, COUNT(*), COALESCE(SUM({Cost}), 0), COALESCE(MIN({Cost}), 0)
            FROM workload_calls WHERE {where} AND prompt_hash IS NOT NULL AND status = 'ok'
            GROUP BY prompt_hash, model HAVING COUNT(*) > 1 ORDER BY 4 DESC, 1, 2
            """, r => new RepeatedPrompt(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetDouble(3), r.GetDouble(4)), cancellationToken, parameters);
    }

    public async Task<IReadOnlyList<HourlyCost>> GetHourlyCostAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var (where, parameters) = Where(userId, filter);
        return await ReadAsync($"SELECT CAST(ts / 3600000 AS BIGINT), COUNT(*), COALESCE(SUM({Cost}), 0) FROM workload_calls WHERE {where} GROUP BY 1 ORDER BY 1",
            r => new HourlyCost(DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0) * 3_600_000), r.GetInt64(1), r.GetDouble(2)), cancellationToken, parameters);
    }
}
