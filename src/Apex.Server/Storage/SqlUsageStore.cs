
namespace Apex.Server.Storage;

/// <summary>The user's usage log.</summary>
internal sealed class SqlUsageStore(Database db) : SqlStore(db), IUsageStore
{
    public async Task<IReadOnlyList<ToolUsageRecord>> ListToolUsageAsync(string userId, int limit, string? beforeId, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT id, user_id, run_id, tool, status, duration_ms, created_at FROM tool_usage WHERE user_id = @u AND (@before IS NULL OR id < @before) ORDER BY id DESC LIMIT @limit",
            r => new ToolUsageRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetDouble(5), r.Time(6)),
            cancellationToken, ("@u", userId), ("@before", beforeId), ("@limit", limit));
}
