using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>The event log: appends (seq per thread) and owner-scoped reads.</summary>
internal sealed class SqlEventStore(Database db, NodeIdentity node) : SqlStore(db), IEventStore
{
    private readonly EventAppender _appender = new(db, node);


    public Task<IReadOnlyList<ApexEvent>> AppendEventsAsync(IReadOnlyList<EventAppend> events, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => _appender.AppendAsync(c, t, events, cancellationToken), cancellationToken);

    public async Task<IReadOnlyList<ApexEvent>> ReadEventsAsync(string userId, string threadId, long afterSeq, int limit, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT payload FROM events WHERE thread_id = @t AND user_id = @u AND seq > @after ORDER BY seq LIMIT @limit",
            ReadEvent, cancellationToken, ("@t", threadId), ("@u", userId), ("@after", afterSeq), ("@limit", limit));

    public async Task<IReadOnlyList<ApexEvent>> ReadRunEventsAsync(string userId, string runId, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT payload FROM events WHERE run_id = @r AND user_id = @u ORDER BY seq", ReadEvent, cancellationToken, ("@r", runId), ("@u", userId));

    public Task<int> DeleteEventsOlderThanAsync(DateTimeOffset cutoff, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync("DELETE FROM events WHERE created_at < @cutoff", t, cancellationToken, ("@cutoff", cutoff.ToUnixMs())), cancellationToken);
}
