using System.Data.Common;
using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>Runs: the queue, claims, leases, cancellation requests and take-overs.</summary>
internal sealed class SqlRunStore(Database db, NodeIdentity node) : SqlStore(db), IRunStore
{
    private readonly NodeIdentity _node = node;
    private readonly EventAppender _appender = new(db, node);


    public Task<SubmitResult> SubmitRunAsync(MessageRecord message, RunRecord run, Func<int, ApexEvent> queuedEvent, int maxPending, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            // Touching the thread row first takes its row lock (PostgreSQL), so concurrent submits to one thread serialize.
            await c.ExecuteAsync("UPDATE threads SET updated_at = @now WHERE id = @t AND user_id = @u", t, cancellationToken,
                ("@now", run.CreatedAt.ToUnixMs()), ("@t", run.ThreadId), ("@u", run.UserId));
            var active = await c.QueryAsync("SELECT id, status FROM runs WHERE thread_id = @t AND user_id = @u AND status IN ('queued', 'running', 'waiting') ORDER BY created_at, id",
                t, r => (Id: r.GetString(0), Status: r.GetString(1)), cancellationToken, ("@t", run.ThreadId), ("@u", run.UserId));
            var ids = active.Select(a => a.Id).ToList();
            if (active.Count > 0 && run.Strategy == QueueStrategies.Reject) return new SubmitResult(SubmitOutcome.ThreadBusy, active.Count, ids, null);
            if (active.Count(a => a.Status == RunStatus.Queued) >= maxPending) return new SubmitResult(SubmitOutcome.QueueFull, active.Count, ids, null);
            await InsertMessageAsync(c, t, message, cancellationToken);
            await c.ExecuteAsync($"INSERT INTO runs ({RunColumns}) VALUES (@id, @t, @u, 'queued', @s, @m, @ca, NULL, NULL, NULL, NULL, 0, @ag, @av)", t, cancellationToken,
                ("@id", run.Id), ("@t", run.ThreadId), ("@u", run.UserId), ("@s", run.Strategy), ("@m", run.MessageId), ("@ca", run.CreatedAt.ToUnixMs()),
                ("@ag", run.AgentId), ("@av", run.AgentVersion is { } version ? version : DBNull.Value));
            await Db.NotifyAsync(c, t, StoreSignals.RunsChannel, _node.Id, cancellationToken);
            // The run and its first event commit together: there is never a run without its run_queued.
            var queued = await _appender.AppendAsync(c, t, [new EventAppend(queuedEvent(active.Count))], cancellationToken);
            return new SubmitResult(SubmitOutcome.Queued, active.Count, ids, queued.Count == 1 ? queued[0] : null);
        }, cancellationToken);

    public async Task<RunRecord?> GetRunAsync(string userId, string runId, CancellationToken cancellationToken) =>
        await WithResultsAsync(await ReadSingleAsync($"SELECT {RunColumns} FROM runs WHERE id = @id AND user_id = @u", ReadRun, cancellationToken, ("@id", runId), ("@u", userId)),
            cancellationToken);

    public async Task<IReadOnlyList<RunRecord>> ListRunsByStatusAsync(string status, DateTimeOffset? stuckAt, int limit, CancellationToken cancellationToken) =>
        await ReadAsync($"""
            SELECT {RunColumns} FROM runs WHERE status = @s AND (@stuck IS NULL OR lease_until < CAST(@stuck AS BIGINT)) ORDER BY created_at, id LIMIT @limit
            """, ReadRun, cancellationToken, ("@s", status), ("@stuck", stuckAt?.ToUnixMs().ToString(System.Globalization.CultureInfo.InvariantCulture)), ("@limit", limit));

    public async Task<RunRecord?> FindRunAsync(string runId, CancellationToken cancellationToken) =>
        await WithResultsAsync(await ReadSingleAsync($"SELECT {RunColumns} FROM runs WHERE id = @id", ReadRun, cancellationToken, ("@id", runId)), cancellationToken);

    public async Task<IReadOnlyList<RunRecord>> ListRunsAsync(string userId, string threadId, int limit, string? afterId, CancellationToken cancellationToken)
    {
        var runs = await ReadAsync($"SELECT {RunColumns} FROM runs WHERE thread_id = @t AND user_id = @u AND (@after IS NULL OR id > @after) ORDER BY id LIMIT @limit",
            ReadRun, cancellationToken, ("@t", threadId), ("@u", userId), ("@after", afterId), ("@limit", limit));
        if (runs.Count == 0) return runs;
        var results = await ResultsAsync(threadId, userId, runs.Count == 1 ? runs[0].Id : null, cancellationToken);
        return [.. runs.Select(r => r with { Results = results.GetValueOrDefault(r.Id) })];
    }

    /// <summary>
    /// A run's results are not stored with the run: each agent's result is in its <c>agent_completed</c> event, and the run's
    /// results are those of every agent but the supervisor that ended ok, in the order they ended (an agent that ran twice: its last one).
    /// </summary>
    private async Task<RunRecord?> WithResultsAsync(RunRecord? run, CancellationToken cancellationToken) =>
        run is null ? null : run with { Results = (await ResultsAsync(run.ThreadId, run.UserId, run.Id, cancellationToken)).GetValueOrDefault(run.Id) };

    /// <summary>The results (as JSON objects) of the thread's runs that have any, or of one run of it.</summary>
    private async Task<Dictionary<string, string>> ResultsAsync(string threadId, string userId, string? runId, CancellationToken cancellationToken)
    {
        var rows = await ReadAsync("""
            SELECT e.run_id, e.agent, e.data FROM events e
            WHERE e.thread_id = @tk AND e.type = @type AND e.agent <> @supervisor AND (@r IS NULL OR e.run_id = @r)
              AND EXISTS (SELECT 1 FROM threads WHERE id = @t AND user_id = @u)
            ORDER BY e.seq
            """, r => (Run: EventCodec.Id((byte[])r.GetValue(0)), Agent: r.GetString(1), Data: r.GetValue(2)), cancellationToken,
            ("@tk", EventCodec.Id(threadId)), ("@type", EventCodec.TypeCode(EventTypes.AgentCompleted)), ("@supervisor", Agents.AgentNames.Supervisor),
            ("@r", EventCodec.IdOrNull(runId)), ("@t", threadId), ("@u", userId));
        var byRun = new Dictionary<string, Dictionary<string, System.Text.Json.JsonElement>>(StringComparer.Ordinal);
        foreach (var (run, agent, data) in rows)
        {
            if (EventCodec.AgentResult(data) is not { } result) continue;
            if (!byRun.TryGetValue(run, out var results)) byRun[run] = results = new(StringComparer.Ordinal);
            results[agent] = result;
        }
        return byRun.ToDictionary(p => p.Key, p => System.Text.Json.JsonSerializer.Serialize(p.Value, ApexJsonContext.Default.DictionaryStringJsonElement), StringComparer.Ordinal);
    }

    public async Task<IReadOnlyList<RunRecord>> ListActiveRunsAsync(string userId, string threadId, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {RunColumns} FROM runs WHERE thread_id = @t AND user_id = @u AND status IN ('queued', 'running', 'waiting') ORDER BY id",
            ReadRun, cancellationToken, ("@t", threadId), ("@u", userId));

    public async Task<RunRecord?> ClaimNextRunAsync(string nodeId, int maxActivePerUser, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        try
        {
            return await ClaimAsync(nodeId, maxActivePerUser, now, leaseUntil, cancellationToken);
        }
        catch (DbException ex) when (Db.IsUniqueViolation(ex))
        {
            return null; // another node started a run of the same thread at the same moment: it is that node's
        }
    }

    private Task<RunRecord?> ClaimAsync(string nodeId, int maxActivePerUser, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.QuerySingleAsync($"""
            UPDATE runs SET status = 'running', node_id = @node, started_at = COALESCE(started_at, @now), lease_until = @lease
            WHERE id = (
              SELECT r.id FROM runs r
              WHERE r.status = 'queued'
                AND NOT EXISTS (SELECT 1 FROM runs a WHERE a.thread_id = r.thread_id AND a.status IN ('running', 'waiting'))
                AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.thread_id = r.thread_id AND q.status = 'queued' AND q.id < r.id)
                AND (SELECT COUNT(*) FROM runs b WHERE b.user_id = r.user_id AND b.status = 'running') < @max
              ORDER BY r.id
              LIMIT 1 {Db.SkipLocked})
            RETURNING {RunColumns}, checkpoint
            """, t, ReadRun, cancellationToken, ("@node", nodeId), ("@now", now.ToUnixMs()), ("@lease", leaseUntil.ToUnixMs()), ("@max", maxActivePerUser)), cancellationToken);

    /// <summary>
    /// One statement for all of the node's runs. It never waits for a row lock: a run row locked by another transaction
    /// (the batch that ends the run, a cancel request) is skipped this time and renewed at the next heartbeat, long before
    /// its lease runs out. Waiting there is what made the heartbeat one half of a deadlock.
    /// </summary>
    public async Task<IReadOnlyList<string>> RenewLeasesAsync(string nodeId, IReadOnlyCollection<string> runIds, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        if (runIds.Count == 0) return [];
        var renewed = await Db.WriteAsync((c, t) => c.QueryAsync($"""
            UPDATE runs SET lease_until = @lease
            WHERE id IN (SELECT id FROM runs WHERE {Db.InList("id", "@ids")} AND node_id = @node AND status = 'running' ORDER BY id {Db.LockRows(skipLocked: true)})
            RETURNING id, cancel_requested
            """, t, r => (Id: r.GetString(0), Cancel: r.GetInt64(1) != 0), cancellationToken,
            ("@lease", leaseUntil.ToUnixMs()), ("@ids", Db.ListValue(runIds)), ("@node", nodeId)), cancellationToken);
        return [.. renewed.Where(r => r.Cancel).Select(r => r.Id)];
    }

    public Task SaveAnswerAsync(MessageRecord answer, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => InsertMessageAsync(c, t, answer, cancellationToken), cancellationToken);

    public Task<bool> RequestCancelAsync(string userId, string runId, string reason, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            var requested = await c.ExecuteAsync("UPDATE runs SET cancel_requested = 1 WHERE id = @id AND user_id = @u AND status = 'running'",
                t, cancellationToken, ("@id", runId), ("@u", userId)) == 1;
            if (requested) await Db.NotifyAsync(c, t, StoreSignals.CancelChannel, $"{runId}|{reason}", cancellationToken);
            return requested;
        }, cancellationToken);

    public Task<bool> TryTakeOverRunAsync(string runId, string nodeId, DateTimeOffset now, DateTimeOffset leaseUntil, bool ignoreLease, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) => await c.ExecuteAsync(
            "UPDATE runs SET node_id = @node, lease_until = @lease WHERE id = @id AND status = 'running' AND (@ignore = 1 OR lease_until < @now)",
            t, cancellationToken, ("@node", nodeId), ("@lease", leaseUntil.ToUnixMs()), ("@id", runId), ("@ignore", ignoreLease ? 1 : 0), ("@now", now.ToUnixMs())) == 1,
            cancellationToken);

    public async Task<IReadOnlyList<RunRecord>> FindOrphanedRunsAsync(DateTimeOffset leaseExpiredBefore, bool all, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {RunColumns} FROM runs WHERE status = 'running' AND (@all = 1 OR lease_until < @cutoff) ORDER BY id",
            ReadRun, cancellationToken, ("@all", all ? 1 : 0), ("@cutoff", leaseExpiredBefore.ToUnixMs()));
}
