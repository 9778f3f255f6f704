namespace Apex.Server.Storage;

/// <summary>The user's usage: model tokens and cost per run, agent and model; the tool usage log.</summary>
internal sealed class SqlUsageStore(Database db) : SqlStore(db), IUsageStore
{
    public async Task<IReadOnlyList<ToolUsageRecord>> ListToolUsageAsync(string userId, int limit, string? beforeId, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT id, user_id, run_id, tool, status, duration_ms, created_at FROM tool_usage WHERE user_id = @u AND (@before IS NULL OR id < @before) ORDER BY id DESC LIMIT @limit",
            r => new ToolUsageRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetDouble(5), r.Time(6)),
            cancellationToken, ("@u", userId), ("@before", beforeId), ("@limit", limit));

    public Task RecordModelUsageAsync(IReadOnlyList<ModelUsageRecord> rows, CancellationToken cancellationToken) =>
        // One statement for the run's rows (one per agent and model), not one each.
        rows.Count == 0 ? Task.CompletedTask : Db.WriteAsync(async (c, t) => await c.ExecuteAsync(
            "INSERT INTO model_usage (user_id, run_id, agent, model, calls, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost, created_at) VALUES " +
            string.Join(", ", rows.Select((_, i) => $"(@u{i}, @r{i}, @a{i}, @m{i}, @calls{i}, @in{i}, @out{i}, @cached{i}, @reasoning{i}, CAST(@cost{i} AS DOUBLE PRECISION), @ca{i})")),
            t, cancellationToken, [.. rows.SelectMany((u, i) => new (string, object?)[]
            {
                ($"@u{i}", u.UserId), ($"@r{i}", u.RunId), ($"@a{i}", u.Agent), ($"@m{i}", u.Model), ($"@calls{i}", u.Calls),
                ($"@in{i}", u.InputTokens), ($"@out{i}", u.OutputTokens), ($"@cached{i}", u.CachedTokens), ($"@reasoning{i}", u.ReasoningTokens),
                ($"@cost{i}", u.Cost is { } cost ? cost : DBNull.Value), ($"@ca{i}", u.CreatedAt.ToUnixMs()),
            })]), cancellationToken);

    public async Task<IReadOnlyList<DailyModelUsage>> ModelUsageByDayAsync(string userId, DateTimeOffset from, CancellationToken cancellationToken) =>
        await ReadAsync("""
            SELECT CAST(created_at / 86400000 AS BIGINT), model, CAST(SUM(calls) AS BIGINT), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT),
                   CAST(SUM(cached_tokens) AS BIGINT), CAST(SUM(reasoning_tokens) AS BIGINT), SUM(cost)
            FROM model_usage WHERE user_id = @u AND created_at >= @from GROUP BY 1, 2 ORDER BY 1, 2
            """, r => new DailyModelUsage(Day(r.GetInt64(0)), r.GetString(1), (int)r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.GetInt64(6),
                r.IsDBNull(7) ? null : r.GetDouble(7)), cancellationToken, ("@u", userId), ("@from", from.ToUnixMs()));

    public async Task<UsageTotal> TotalSinceAsync(string userId, DateTimeOffset from, CancellationToken cancellationToken) =>
        (await ReadSingleAsync("""
            SELECT CAST(COALESCE(SUM(input_tokens + output_tokens), 0) AS BIGINT), COALESCE(SUM(cost), 0) FROM model_usage WHERE user_id = @u AND created_at >= @from
            """, r => new UsageTotal(r.GetInt64(0), r.GetDouble(1)), cancellationToken, ("@u", userId), ("@from", from.ToUnixMs())))!;

    public async Task<IReadOnlyList<UserUsageTotal>> TotalsByUserAsync(DateTimeOffset from, int limit, CancellationToken cancellationToken) =>
        await ReadAsync("""
            SELECT m.user_id, u.email, CAST(SUM(m.calls) AS BIGINT), CAST(SUM(m.input_tokens + m.output_tokens) AS BIGINT), COALESCE(SUM(m.cost), 0)
            FROM model_usage m JOIN users u ON u.id = m.user_id WHERE m.created_at >= @from
            GROUP BY m.user_id, u.email ORDER BY 5 DESC, 4 DESC LIMIT @limit
            """, r => new UserUsageTotal(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.GetDouble(4)), cancellationToken, ("@from", from.ToUnixMs()), ("@limit", limit));

    public async Task<IReadOnlyList<DailyToolUsage>> ToolUsageByDayAsync(string userId, DateTimeOffset from, CancellationToken cancellationToken) =>
        await ReadAsync("""
            SELECT CAST(created_at / 86400000 AS BIGINT), tool, COUNT(*), CAST(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS BIGINT)
            FROM tool_usage WHERE user_id = @u AND created_at >= @from GROUP BY 1, 2 ORDER BY 1, 2
            """, r => new DailyToolUsage(Day(r.GetInt64(0)), r.GetString(1), r.GetInt64(2), r.GetInt64(3)), cancellationToken, ("@u", userId), ("@from", from.ToUnixMs()));

    private static string Day(long day) =>
        DateTimeOffset.FromUnixTimeMilliseconds(day * 86_400_000).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture);
}
