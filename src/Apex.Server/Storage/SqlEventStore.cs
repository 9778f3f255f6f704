using System.Data.Common;
using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>The event log: appends (seq per thread) and owner-scoped reads, through the thread row (see <see cref="EventCodec"/>).</summary>
internal sealed class SqlEventStore(Database db, NodeIdentity node) : SqlStore(db), IEventStore
{
    private const string EventColumns = "e.type, e.data, e.seq, e.run_id, e.event_id, e.agent, e.at";

    private readonly EventAppender _appender = new(db, node);

    public Task<IReadOnlyList<ApexEvent>> AppendEventsAsync(IReadOnlyList<EventAppend> events, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => _appender.AppendAsync(c, t, events, cancellationToken), cancellationToken);

    public async Task<IReadOnlyList<ApexEvent>> ReadEventsAsync(string userId, string threadId, long afterSeq, int limit, CancellationToken cancellationToken) =>
        await ReadAsync($"""
            SELECT {EventColumns} FROM events e
            WHERE e.thread_id = @tk AND e.seq > @after AND EXISTS (SELECT 1 FROM threads WHERE id = @t AND user_id = @u)
            ORDER BY e.seq LIMIT @limit
            """, r => Read(r, threadId, userId), cancellationToken, ("@tk", EventCodec.Id(threadId)), ("@t", threadId), ("@u", userId), ("@after", afterSeq), ("@limit", limit));

    /// <summary>
    /// A run's events, read from its thread: only recovery needs them (rarely), so there is no index by run to pay for on
    /// every append; the thread's rows are one range of the primary key.
    /// </summary>
    public async Task<IReadOnlyList<ApexEvent>> ReadRunEventsAsync(string userId, string runId, CancellationToken cancellationToken)
    {
        await using var connection = await Db.OpenAsync(cancellationToken);
        var threadId = await connection.QuerySingleAsync("SELECT thread_id FROM runs WHERE id = @r AND user_id = @u", null, r => r.GetString(0), cancellationToken,
            ("@r", runId), ("@u", userId));
        if (threadId is null) return [];
        return await connection.QueryAsync($"""
            SELECT {EventColumns} FROM events e
            WHERE e.thread_id = @tk AND e.run_id = @rk AND EXISTS (SELECT 1 FROM threads WHERE id = @t AND user_id = @u)
            ORDER BY e.seq
            """, null, r => Read(r, threadId, userId), cancellationToken, ("@tk", EventCodec.Id(threadId)), ("@rk", EventCodec.Id(runId)), ("@t", threadId), ("@u", userId));
    }

    public Task<int> DeleteEventsOlderThanAsync(DateTimeOffset cutoff, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync("DELETE FROM events WHERE at < @cutoff", t, cancellationToken, ("@cutoff", EventCodec.Ticks(cutoff))), cancellationToken);

    private static ApexEvent Read(DbDataReader r, string threadId, string userId) =>
        EventCodec.Read(r.GetInt16(0), r.GetValue(1), r.GetInt64(2), threadId, r.IsDBNull(3) ? null : EventCodec.Id((byte[])r.GetValue(3)), userId,
            EventCodec.Id((byte[])r.GetValue(4)), r.StringOrNull(5), r.GetInt64(6));
}
