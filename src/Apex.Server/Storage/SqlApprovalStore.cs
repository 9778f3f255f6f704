using System.Data.Common;
using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>Tool approvals and the runs that wait for them (see <see cref="IApprovalStore"/>).</summary>
internal sealed class SqlApprovalStore(Database db, NodeIdentity node) : SqlStore(db), IApprovalStore
{
    private readonly EventAppender _appender = new(db, node);

    private const string Columns = "run_id, call_id, user_id, thread_id, agent, tool, arguments, status, edited_arguments, reason, decided_by, requested_at, expires_at, decided_at";

    private static ApprovalRecord Read(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.GetString(6), r.GetString(7),
            r.StringOrNull(8), r.StringOrNull(9), r.StringOrNull(10), r.Time(11), r.Time(12), r.TimeOrNull(13));

    public Task<ParkedRun?> ParkAsync(ApprovalRecord a, string nodeId, string checkpoint, ApexEvent requested, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            // The run row first (then the thread row, when the event is appended): the lock order of every writer.
            var cancelled = await c.QuerySingleAsync("""
                SELECT cancel_requested FROM runs WHERE id = @id AND user_id = @u AND status = 'running' AND node_id = @node
                """ + " " + Db.LockRows(skipLocked: false), t, r => (object)(r.GetInt64(0) != 0), cancellationToken, ("@id", a.RunId), ("@u", a.UserId), ("@node", nodeId));
            if (cancelled is not bool isCancelled) return null;
            await c.ExecuteAsync($"""
                INSERT INTO approvals ({Columns}) VALUES (@r, @c, @u, @t, @a, @tool, @args, @s, NULL, @why, NULL, @at, @exp, CAST(@decided AS BIGINT))
                """, t, cancellationToken, ("@r", a.RunId), ("@c", a.CallId), ("@u", a.UserId), ("@t", a.ThreadId), ("@a", a.Agent), ("@tool", a.Tool), ("@args", a.Arguments),
                ("@s", isCancelled ? ApprovalStatus.Cancelled : ApprovalStatus.Pending), ("@why", null), ("@at", a.RequestedAt.ToUnixMs()),
                ("@exp", a.ExpiresAt.ToUnixMs()), ("@decided", isCancelled ? a.RequestedAt.ToUnixMs() : null));
            var status = isCancelled ? RunStatus.Queued : RunStatus.Waiting;
            await c.ExecuteAsync("UPDATE runs SET status = @s, checkpoint = @cp, node_id = NULL, lease_until = NULL WHERE id = @id AND user_id = @u", t, cancellationToken,
                ("@s", status), ("@cp", checkpoint), ("@id", a.RunId), ("@u", a.UserId));
            // The request is stored with the run's new state: a client that sees it can answer it, and a crash never leaves one without the other.
            var stored = await _appender.AppendAsync(c, t, [new EventAppend(requested)], cancellationToken);
            if (isCancelled) await Db.NotifyAsync(c, t, StoreSignals.RunsChannel, node.Id, cancellationToken);
            return new ParkedRun(status, stored.Count == 1 ? stored[0] : requested);
        }, cancellationToken);

    public Task<ApprovalRecord?> GetAsync(string userId, string runId, string callId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {Columns} FROM approvals WHERE run_id = @r AND call_id = @c AND user_id = @u", Read, cancellationToken,
            ("@r", runId), ("@c", callId), ("@u", userId));

    public async Task<IReadOnlyList<ApprovalRecord>> ListAsync(string userId, string runId, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {Columns} FROM approvals WHERE run_id = @r AND user_id = @u ORDER BY requested_at, call_id", Read, cancellationToken,
            ("@r", runId), ("@u", userId));

    public Task<ApprovalDecision> DecideAsync(string userId, string runId, string callId, bool approved, string? editedArguments, string? reason, string decidedBy,
        DateTimeOffset now, CancellationToken cancellationToken) =>
        Db.WriteAsync<ApprovalDecision>(async (c, t) =>
        {
            var decided = await c.QuerySingleAsync($"""
                UPDATE approvals SET status = @s, edited_arguments = @e, reason = @why, decided_by = @by, decided_at = @now
                WHERE run_id = @r AND call_id = @c AND user_id = @u AND status = 'pending'
                RETURNING {Columns}
                """, t, Read, cancellationToken, ("@s", approved ? ApprovalStatus.Approved : ApprovalStatus.Rejected), ("@e", approved ? editedArguments : null),
                ("@why", reason), ("@by", decidedBy), ("@now", now.ToUnixMs()), ("@r", runId), ("@c", callId), ("@u", userId));
            if (decided is null)
            {
                var existing = await c.QuerySingleAsync($"SELECT {Columns} FROM approvals WHERE run_id = @r AND call_id = @c AND user_id = @u", t, Read, cancellationToken,
                    ("@r", runId), ("@c", callId), ("@u", userId));
                return existing is null ? new ApprovalDecision.NotFound() : new ApprovalDecision.AlreadyDecided(existing);
            }
            await RequeueAsync(c, t, userId, runId, cancellationToken);
            return new ApprovalDecision.Decided(decided);
        }, cancellationToken);

    public Task<bool> CancelParkedAsync(string userId, string runId, string reason, DateTimeOffset now, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            var parked = await c.ExecuteAsync("""
                UPDATE runs SET status = 'queued', cancel_requested = 1
                WHERE id = @id AND user_id = @u AND checkpoint IS NOT NULL AND status IN ('waiting', 'queued')
                """, t, cancellationToken, ("@id", runId), ("@u", userId)) == 1;
            if (!parked) return false;
            await c.ExecuteAsync("UPDATE approvals SET status = 'cancelled', reason = @why, decided_at = @now WHERE run_id = @r AND user_id = @u AND status = 'pending'",
                t, cancellationToken, ("@why", reason), ("@now", now.ToUnixMs()), ("@r", runId), ("@u", userId));
            await Db.NotifyAsync(c, t, StoreSignals.RunsChannel, node.Id, cancellationToken);
            return true;
        }, cancellationToken);

    public async Task<int> ExpireAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        // Every node sweeps at every heartbeat: a read first, so that a sweep with nothing to do takes no write (SQLite's one writer).
        var due = await ReadAsync("SELECT run_id FROM approvals WHERE status = 'pending' AND expires_at <= @now LIMIT 1", r => r.GetString(0), cancellationToken,
            ("@now", now.ToUnixMs()));
        return due.Count == 0 ? 0 : await ExpireDueAsync(now, cancellationToken);
    }

    private Task<int> ExpireDueAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            var expired = await c.QueryAsync("""
                UPDATE approvals SET status = 'expired', decided_at = @now
                WHERE status = 'pending' AND expires_at <= @now
                RETURNING user_id, run_id
                """, t, r => (User: r.GetString(0), Run: r.GetString(1)), cancellationToken, ("@now", now.ToUnixMs()));
            foreach (var (user, run) in expired.Distinct()) await RequeueAsync(c, t, user, run, cancellationToken);
            return expired.Count;
        }, cancellationToken);

    /// <summary>A waiting run whose approval is answered goes back to the queue; every node's worker hears of it.</summary>
    private async Task RequeueAsync(DbConnection c, DbTransaction? t, string userId, string runId, CancellationToken cancellationToken)
    {
        var requeued = await c.ExecuteAsync("UPDATE runs SET status = 'queued' WHERE id = @id AND user_id = @u AND status = 'waiting'", t, cancellationToken,
            ("@id", runId), ("@u", userId));
        if (requeued > 0) await Db.NotifyAsync(c, t, StoreSignals.RunsChannel, node.Id, cancellationToken);
    }
}
