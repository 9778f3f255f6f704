using System.Data.Common;
using System.Text.Json;
using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>
/// The store on a relational database. The SQL is shared by SQLite and PostgreSQL; what differs
/// (connections, write serialization, row locking) lives in <see cref="Database"/>.
/// </summary>
internal sealed class SqlApexStore(Database db, Execution.NodeIdentity node) : IApexStore
{
    public const string EventsChannel = "apex_events";
    public const string RunsChannel = "apex_runs";
    public const string CancelChannel = "apex_cancel";

    private const string UserColumns = "id, email, normalized_email, password_hash, display_name, tier, created_at, failed_logins, lockout_until";
    private const string ThreadColumns = "id, user_id, title, strategy, last_seq, created_at, updated_at";
    private const string MessageColumns = "id, thread_id, user_id, run_id, role, content, created_at";
    private const string RunColumns = "id, thread_id, user_id, status, strategy, message_id, created_at, started_at, ended_at, error, node_id, cancel_requested";
    private const string RunColumnsWithResults = RunColumns + ", results";
    private const string SessionColumns = "id, user_id, refresh_hash, created_at, expires_at, revoked_at";

    public async Task<bool> IsReadyAsync(CancellationToken cancellationToken)
    {
        await using var connection = await db.OpenAsync(cancellationToken);
        return await Migrations.CurrentVersionAsync(connection, null, cancellationToken) == Migrations.Latest;
    }

    // ---- Accounts ----

    public Task<bool> CreateUserAsync(UserRecord user, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) => await c.ExecuteAsync(
            $"INSERT INTO users ({UserColumns}) VALUES (@id, @e, @ne, @ph, @dn, @tier, @ca, 0, NULL) ON CONFLICT (normalized_email) DO NOTHING", t, cancellationToken,
            ("@id", user.Id), ("@e", user.Email), ("@ne", user.NormalizedEmail), ("@ph", user.PasswordHash), ("@dn", user.DisplayName),
            ("@tier", user.Tier), ("@ca", user.CreatedAt.ToUnixMs())) == 1, cancellationToken);

    public Task<UserRecord?> FindUserByEmailAsync(string normalizedEmail, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {UserColumns} FROM users WHERE normalized_email = @ne", ReadUser, cancellationToken, ("@ne", normalizedEmail));

    public Task<UserRecord?> GetUserAsync(string userId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {UserColumns} FROM users WHERE id = @id", ReadUser, cancellationToken, ("@id", userId));

    public Task RecordLoginFailureAsync(string userId, int maxFailures, DateTimeOffset lockoutUntil, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => c.ExecuteAsync("""
            UPDATE users SET
              lockout_until = CASE WHEN failed_logins + 1 >= @max THEN @until ELSE lockout_until END,
              failed_logins = CASE WHEN failed_logins + 1 >= @max THEN 0 ELSE failed_logins + 1 END
            WHERE id = @id
            """, t, cancellationToken, ("@id", userId), ("@max", maxFailures), ("@until", lockoutUntil.ToUnixMs())), cancellationToken);

    public Task ResetLoginFailuresAsync(string userId, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => c.ExecuteAsync("UPDATE users SET failed_logins = 0, lockout_until = NULL WHERE id = @id AND (failed_logins <> 0 OR lockout_until IS NOT NULL)",
            t, cancellationToken, ("@id", userId)), cancellationToken);

    public Task CreateSessionAsync(SessionRecord session, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => c.ExecuteAsync($"INSERT INTO sessions ({SessionColumns}) VALUES (@id, @u, @h, @ca, @ea, NULL)", t, cancellationToken,
            ("@id", session.Id), ("@u", session.UserId), ("@h", session.RefreshHash), ("@ca", session.CreatedAt.ToUnixMs()), ("@ea", session.ExpiresAt.ToUnixMs())), cancellationToken);

    public Task<SessionRecord?> GetSessionAsync(string userId, string sessionId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {SessionColumns} FROM sessions WHERE id = @id AND user_id = @u", ReadSession, cancellationToken, ("@id", sessionId), ("@u", userId));

    public Task<SessionRecord?> RotateRefreshTokenAsync(string oldHash, string newHash, DateTimeOffset newExpiry, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => c.QuerySingleAsync(
            $"UPDATE sessions SET refresh_hash = @new, expires_at = @ea WHERE refresh_hash = @old AND revoked_at IS NULL AND expires_at > @now RETURNING {SessionColumns}",
            t, ReadSession, cancellationToken, ("@new", newHash), ("@old", oldHash), ("@ea", newExpiry.ToUnixMs()), ("@now", now.ToUnixMs())), cancellationToken);

    public Task<bool> RevokeSessionAsync(string userId, string sessionId, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) => await c.ExecuteAsync("UPDATE sessions SET revoked_at = @now WHERE id = @id AND user_id = @u AND revoked_at IS NULL",
            t, cancellationToken, ("@id", sessionId), ("@u", userId), ("@now", now.ToUnixMs())) == 1, cancellationToken);

    public Task<string> GetOrCreateSigningKeyAsync(string candidateSecret, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) =>
        {
            // One well-known row: nodes starting together all insert-or-keep the same one, so they all sign with one key.
            await c.ExecuteAsync("INSERT INTO signing_keys (id, secret, created_at) VALUES ('primary', @s, @ca) ON CONFLICT (id) DO NOTHING", t, cancellationToken,
                ("@s", candidateSecret), ("@ca", now.ToUnixMs()));
            return (await c.QuerySingleAsync("SELECT secret FROM signing_keys WHERE id = 'primary'", t, r => r.GetString(0), cancellationToken))!;
        }, cancellationToken);

    public Task CreateTicketAsync(string ticketHash, string userId, string sessionId, DateTimeOffset expiresAt, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) =>
        {
            // Expired tickets are swept by whoever issues the next one: no timer needed.
            await c.ExecuteAsync("DELETE FROM ws_tickets WHERE expires_at < @now", t, cancellationToken, ("@now", expiresAt.AddMinutes(-5).ToUnixMs()));
            return await c.ExecuteAsync("INSERT INTO ws_tickets (ticket_hash, user_id, session_id, expires_at) VALUES (@h, @u, @s, @ea)", t, cancellationToken,
                ("@h", ticketHash), ("@u", userId), ("@s", sessionId), ("@ea", expiresAt.ToUnixMs()));
        }, cancellationToken);

    public async Task<(string UserId, string SessionId)?> ConsumeTicketAsync(string ticketHash, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var row = await db.WriteAsync((c, t) => c.QuerySingleAsync(
            "DELETE FROM ws_tickets WHERE ticket_hash = @h RETURNING user_id, session_id, expires_at", t,
            r => new Tuple<string, string, long>(r.GetString(0), r.GetString(1), r.GetInt64(2)), cancellationToken, ("@h", ticketHash)), cancellationToken);
        return row is null || row.Item3 < now.ToUnixMs() ? null : (row.Item1, row.Item2);
    }

    // ---- Threads and messages ----

    public Task CreateThreadAsync(ThreadRecord thread, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => c.ExecuteAsync($"INSERT INTO threads ({ThreadColumns}) VALUES (@id, @u, @title, @s, 0, @ca, @ua)", t, cancellationToken,
            ("@id", thread.Id), ("@u", thread.UserId), ("@title", thread.Title), ("@s", thread.Strategy), ("@ca", thread.CreatedAt.ToUnixMs()), ("@ua", thread.UpdatedAt.ToUnixMs())), cancellationToken);

    public Task<ThreadRecord?> GetThreadAsync(string userId, string threadId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {ThreadColumns} FROM threads WHERE id = @id AND user_id = @u", ReadThread, cancellationToken, ("@id", threadId), ("@u", userId));

    public async Task<IReadOnlyList<ThreadRecord>> ListThreadsAsync(string userId, int limit, string? afterId, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {ThreadColumns} FROM threads WHERE user_id = @u AND (@after IS NULL OR id < @after) ORDER BY id DESC LIMIT @limit",
            ReadThread, cancellationToken, ("@u", userId), ("@after", afterId), ("@limit", limit));

    public Task<ThreadRecord?> UpdateThreadAsync(string userId, string threadId, string? title, string? strategy, DateTimeOffset now, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => c.QuerySingleAsync(
            $"UPDATE threads SET title = COALESCE(@title, title), strategy = COALESCE(@s, strategy), updated_at = @now WHERE id = @id AND user_id = @u RETURNING {ThreadColumns}",
            t, ReadThread, cancellationToken, ("@title", title), ("@s", strategy), ("@now", now.ToUnixMs()), ("@id", threadId), ("@u", userId)), cancellationToken);

    public Task<bool> DeleteThreadAsync(string userId, string threadId, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) => await c.ExecuteAsync("DELETE FROM threads WHERE id = @id AND user_id = @u", t, cancellationToken, ("@id", threadId), ("@u", userId)) == 1, cancellationToken);

    public async Task<IReadOnlyList<MessageRecord>> ListMessagesAsync(string userId, string threadId, int limit, string? afterId, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {MessageColumns} FROM messages WHERE thread_id = @t AND user_id = @u AND (@after IS NULL OR id > @after) ORDER BY id LIMIT @limit",
            ReadMessage, cancellationToken, ("@t", threadId), ("@u", userId), ("@after", afterId), ("@limit", limit));

    public async Task<IReadOnlyList<MessageRecord>> RecentMessagesAsync(string userId, string threadId, int count, CancellationToken cancellationToken)
    {
        var newestFirst = await ReadAsync($"SELECT {MessageColumns} FROM messages WHERE thread_id = @t AND user_id = @u ORDER BY id DESC LIMIT @limit",
            ReadMessage, cancellationToken, ("@t", threadId), ("@u", userId), ("@limit", count));
        newestFirst.Reverse();
        return newestFirst;
    }

    // ---- Runs ----

    public Task<SubmitResult> SubmitRunAsync(MessageRecord message, RunRecord run, Func<int, ApexEvent> queuedEvent, int maxPending, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) =>
        {
            // Touching the thread row first takes its row lock (PostgreSQL), so concurrent submits to one thread serialize.
            await c.ExecuteAsync("UPDATE threads SET updated_at = @now WHERE id = @t AND user_id = @u", t, cancellationToken,
                ("@now", run.CreatedAt.ToUnixMs()), ("@t", run.ThreadId), ("@u", run.UserId));
            var active = await c.QueryAsync("SELECT id, status FROM runs WHERE thread_id = @t AND user_id = @u AND status IN ('queued', 'running') ORDER BY created_at, id",
                t, r => (Id: r.GetString(0), Status: r.GetString(1)), cancellationToken, ("@t", run.ThreadId), ("@u", run.UserId));
            var ids = active.Select(a => a.Id).ToList();
            if (active.Count > 0 && run.Strategy == QueueStrategies.Reject) return new SubmitResult(SubmitOutcome.ThreadBusy, active.Count, ids, null);
            if (active.Count(a => a.Status == RunStatus.Queued) >= maxPending) return new SubmitResult(SubmitOutcome.QueueFull, active.Count, ids, null);
            await InsertMessageAsync(c, t, message, cancellationToken);
            await c.ExecuteAsync($"INSERT INTO runs ({RunColumns}) VALUES (@id, @t, @u, 'queued', @s, @m, @ca, NULL, NULL, NULL, NULL, 0)", t, cancellationToken,
                ("@id", run.Id), ("@t", run.ThreadId), ("@u", run.UserId), ("@s", run.Strategy), ("@m", run.MessageId), ("@ca", run.CreatedAt.ToUnixMs()));
            await db.NotifyAsync(c, t, RunsChannel, node.Id, cancellationToken);
            // The run and its first event commit together: there is never a run without its run_queued.
            var queued = await AppendAsync(c, t, [new EventAppend(queuedEvent(active.Count))], cancellationToken);
            return new SubmitResult(SubmitOutcome.Queued, active.Count, ids, queued.Count == 1 ? queued[0] : null);
        }, cancellationToken);

    public Task<RunRecord?> GetRunAsync(string userId, string runId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {RunColumnsWithResults} FROM runs WHERE id = @id AND user_id = @u", ReadRun, cancellationToken, ("@id", runId), ("@u", userId));

    public async Task<IReadOnlyList<RunRecord>> ListRunsAsync(string userId, string threadId, int limit, string? afterId, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {RunColumnsWithResults} FROM runs WHERE thread_id = @t AND user_id = @u AND (@after IS NULL OR id > @after) ORDER BY id LIMIT @limit",
            ReadRun, cancellationToken, ("@t", threadId), ("@u", userId), ("@after", afterId), ("@limit", limit));

    public async Task<RunRecord?> ClaimNextRunAsync(string nodeId, int maxActivePerUser, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        try
        {
            return await ClaimAsync(nodeId, maxActivePerUser, now, leaseUntil, cancellationToken);
        }
        catch (DbException ex) when (db.IsUniqueViolation(ex))
        {
            return null; // another node started a run of the same thread at the same moment: it is that node's
        }
    }

    private Task<RunRecord?> ClaimAsync(string nodeId, int maxActivePerUser, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => c.QuerySingleAsync($"""
            UPDATE runs SET status = 'running', node_id = @node, started_at = @now, lease_until = @lease
            WHERE id = (
              SELECT r.id FROM runs r
              WHERE r.status = 'queued'
                AND NOT EXISTS (SELECT 1 FROM runs a WHERE a.thread_id = r.thread_id AND a.status = 'running')
                AND NOT EXISTS (SELECT 1 FROM runs q WHERE q.thread_id = r.thread_id AND q.status = 'queued' AND q.id < r.id)
                AND (SELECT COUNT(*) FROM runs b WHERE b.user_id = r.user_id AND b.status = 'running') < @max
              ORDER BY r.id
              LIMIT 1 {db.SkipLocked})
            RETURNING {RunColumns}
            """, t, ReadRun, cancellationToken, ("@node", nodeId), ("@now", now.ToUnixMs()), ("@lease", leaseUntil.ToUnixMs()), ("@max", maxActivePerUser)), cancellationToken);

    public async Task<IReadOnlyList<string>> RenewLeasesAsync(string nodeId, IReadOnlyCollection<string> runIds, DateTimeOffset leaseUntil, CancellationToken cancellationToken)
    {
        if (runIds.Count == 0) return [];
        return await db.WriteAsync(async (c, t) =>
        {
            var cancelRequested = new List<string>();
            foreach (var id in runIds)
            {
                var flag = await c.ScalarAsync("UPDATE runs SET lease_until = @lease WHERE id = @id AND node_id = @node AND status = 'running' RETURNING cancel_requested",
                    t, cancellationToken, ("@lease", leaseUntil.ToUnixMs()), ("@id", id), ("@node", nodeId));
                if (flag is 1) cancelRequested.Add(id);
            }
            return cancelRequested;
        }, cancellationToken);
    }

    public Task SaveAnswerAsync(MessageRecord answer, string results, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) =>
        {
            await InsertMessageAsync(c, t, answer, cancellationToken);
            return await c.ExecuteAsync("UPDATE runs SET results = @r WHERE id = @id AND user_id = @u", t, cancellationToken,
                ("@r", results), ("@id", answer.RunId), ("@u", answer.UserId));
        }, cancellationToken);

    public Task<bool> RequestCancelAsync(string userId, string runId, string reason, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) =>
        {
            var requested = await c.ExecuteAsync("UPDATE runs SET cancel_requested = 1 WHERE id = @id AND user_id = @u AND status = 'running'",
                t, cancellationToken, ("@id", runId), ("@u", userId)) == 1;
            if (requested) await db.NotifyAsync(c, t, CancelChannel, $"{runId}|{reason}", cancellationToken);
            return requested;
        }, cancellationToken);

    public Task<bool> TryTakeOverRunAsync(string runId, string nodeId, DateTimeOffset now, DateTimeOffset leaseUntil, bool ignoreLease, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) => await c.ExecuteAsync(
            "UPDATE runs SET node_id = @node, lease_until = @lease WHERE id = @id AND status = 'running' AND (@ignore = 1 OR lease_until < @now)",
            t, cancellationToken, ("@node", nodeId), ("@lease", leaseUntil.ToUnixMs()), ("@id", runId), ("@ignore", ignoreLease ? 1 : 0), ("@now", now.ToUnixMs())) == 1,
            cancellationToken);

    public async Task<IReadOnlyList<RunRecord>> FindOrphanedRunsAsync(DateTimeOffset leaseExpiredBefore, bool all, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {RunColumns} FROM runs WHERE status = 'running' AND (@all = 1 OR lease_until < @cutoff) ORDER BY id",
            ReadRun, cancellationToken, ("@all", all ? 1 : 0), ("@cutoff", leaseExpiredBefore.ToUnixMs()));

    // ---- Events ----

    public Task<IReadOnlyList<ApexEvent>> AppendEventsAsync(IReadOnlyList<EventAppend> events, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => AppendAsync(c, t, events, cancellationToken), cancellationToken);

    /// <summary>Appends inside the caller's transaction: the one way an event row is written.</summary>
    private async Task<IReadOnlyList<ApexEvent>> AppendAsync(DbConnection c, DbTransaction? t, IReadOnlyList<EventAppend> events, CancellationToken cancellationToken)
    {
            var stored = new List<ApexEvent>(events.Count);
            var lastSeq = new Dictionary<string, long>();
            var endedRuns = false;
            // The two hottest statements of the server: rented, so that the provider can keep them prepared.
            var next = db.RentCommand(c, t, "UPDATE threads SET last_seq = last_seq + 1 WHERE id = @t AND user_id = @u RETURNING last_seq", "@t", "@u");
            var insert = db.RentCommand(c, t, "INSERT INTO events (thread_id, seq, user_id, run_id, type, payload, created_at) VALUES (@t, @s, @u, @r, @ty, @p, @ca)",
                "@t", "@s", "@u", "@r", "@ty", "@p", "@ca");
            try
            {
                // Threads in a fixed order, so that two nodes' batches take the thread row locks in the same order (no deadlock).
                foreach (var (evt, expectedStatus) in events.GroupBy(e => e.Event.ThreadId!, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).SelectMany(g => g))
                {
                    if (evt.IsTerminal && !await EndRunAsync(c, t, evt, expectedStatus ?? RunStatus.Running, cancellationToken)) continue;
                    // The thread row is the per-thread sequence: incrementing it in the same transaction as the insert keeps seq gapless.
                    next.Parameters[0].Value = evt.ThreadId;
                    next.Parameters[1].Value = evt.UserId;
                    var seq = await next.ExecuteScalarAsync(cancellationToken);
                    if (seq is null or DBNull) continue; // the thread was deleted under a running run: nothing left to append to
                    var stamped = evt with { Seq = Convert.ToInt64(seq, System.Globalization.CultureInfo.InvariantCulture) };
                    object?[] values = [stamped.ThreadId, stamped.Seq, stamped.UserId, stamped.RunId, stamped.Type,
                        JsonSerializer.Serialize(stamped, ApexJsonContext.Default.ApexEvent), stamped.Timestamp.ToUnixMs()];
                    for (var i = 0; i < values.Length; i++) insert.Parameters[i].Value = values[i] ?? DBNull.Value;
                    await insert.ExecuteNonQueryAsync(cancellationToken);
                    if (stamped is ToolCompleted tool) await RecordToolUsageAsync(c, t, tool, cancellationToken);
                    stored.Add(stamped);
                    lastSeq[stamped.ThreadId!] = stamped.Seq;
                    endedRuns |= stamped.IsTerminal;
                }
            }
            finally
            {
                await db.ReturnCommand(next);
                await db.ReturnCommand(insert);
            }
            foreach (var (thread, seq) in lastSeq) await db.NotifyAsync(c, t, EventsChannel, $"{node.Id}|{thread}|{seq}", cancellationToken);
            if (endedRuns) await db.NotifyAsync(c, t, RunsChannel, node.Id, cancellationToken);
            return stored;
    }

    /// <summary>The usage log is written with the tool_completed event it comes from, so the two never disagree.</summary>
    private static Task<int> RecordToolUsageAsync(DbConnection c, DbTransaction? t, ToolCompleted tool, CancellationToken cancellationToken) =>
        c.ExecuteAsync("INSERT INTO tool_usage (id, user_id, run_id, tool, status, duration_ms, created_at) VALUES (@id, @u, @r, @tool, @s, @d, @ca)",
            t, cancellationToken, ("@id", tool.EventId), ("@u", tool.UserId), ("@r", tool.RunId ?? ""), ("@tool", tool.Data.Tool), ("@s", tool.Data.Status),
            ("@d", tool.Data.DurationMs), ("@ca", tool.Timestamp.ToUnixMs()));

    private static async Task<bool> EndRunAsync(DbConnection c, DbTransaction? t, ApexEvent terminal, string expectedStatus, CancellationToken cancellationToken)
    {
        var (status, error) = terminal switch
        {
            RunCompleted => (RunStatus.Completed, (string?)null),
            RunFailed f => (RunStatus.Failed, $"{f.Data.Reason}: {f.Data.Message}"),
            RunCancelled x => (RunStatus.Cancelled, x.Data.Reason),
            _ => throw new ArgumentException($"{terminal.Type} is not terminal."),
        };
        return await c.ExecuteAsync("UPDATE runs SET status = @s, error = @e, ended_at = @now, lease_until = NULL WHERE id = @id AND user_id = @u AND status = @expected",
            t, cancellationToken, ("@s", status), ("@e", error), ("@now", terminal.Timestamp.ToUnixMs()), ("@id", terminal.RunId), ("@u", terminal.UserId),
            ("@expected", expectedStatus)) == 1;
    }

    public async Task<IReadOnlyList<ApexEvent>> ReadEventsAsync(string userId, string threadId, long afterSeq, int limit, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT payload FROM events WHERE thread_id = @t AND user_id = @u AND seq > @after ORDER BY seq LIMIT @limit",
            ReadEvent, cancellationToken, ("@t", threadId), ("@u", userId), ("@after", afterSeq), ("@limit", limit));

    public async Task<IReadOnlyList<ApexEvent>> ReadRunEventsAsync(string userId, string runId, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT payload FROM events WHERE run_id = @r AND user_id = @u ORDER BY seq", ReadEvent, cancellationToken, ("@r", runId), ("@u", userId));

    public Task<int> DeleteEventsOlderThanAsync(DateTimeOffset cutoff, CancellationToken cancellationToken) =>
        db.WriteAsync((c, t) => c.ExecuteAsync("DELETE FROM events WHERE created_at < @cutoff", t, cancellationToken, ("@cutoff", cutoff.ToUnixMs())), cancellationToken);

    // ---- Tools ----

    public async Task<WorkloadSummary> GetWorkloadSummaryAsync(string userId, CancellationToken cancellationToken)
    {
        await using var connection = await db.OpenAsync(cancellationToken);
        var totals = await connection.QuerySingleAsync("""
            SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END), 0) AS BIGINT), CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT),
                   CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT), COALESCE(AVG(latency_ms), 0), COALESCE(SUM(cost), 0), MIN(ts), MAX(ts)
            FROM workload_calls WHERE user_id = @u
            """, null, r => new WorkloadSummary(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3), r.GetDouble(4), r.GetDouble(5), r.TimeOrNull(6), r.TimeOrNull(7), []),
            cancellationToken, ("@u", userId));
        var models = await connection.QueryAsync("SELECT DISTINCT model FROM workload_calls WHERE user_id = @u ORDER BY model", null, r => r.GetString(0), cancellationToken, ("@u", userId));
        return totals! with { Models = models };
    }

    public async Task<IReadOnlyList<ToolUsageRecord>> ListToolUsageAsync(string userId, int limit, string? beforeId, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT id, user_id, run_id, tool, status, duration_ms, created_at FROM tool_usage WHERE user_id = @u AND (@before IS NULL OR id < @before) ORDER BY id DESC LIMIT @limit",
            r => new ToolUsageRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetDouble(5), r.Time(6)),
            cancellationToken, ("@u", userId), ("@before", beforeId), ("@limit", limit));

    public Task InsertWorkloadCallsAsync(string userId, IReadOnlyList<WorkloadCall> calls, bool replaceExisting, CancellationToken cancellationToken) =>
        db.WriteAsync(async (c, t) =>
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
        db.WriteAsync((c, t) => c.ExecuteAsync("DELETE FROM workload_calls WHERE user_id = @u", t, cancellationToken, ("@u", userId)), cancellationToken);

    public async Task<IReadOnlyList<ModelStats>> GetModelStatsAsync(string userId, CancellationToken cancellationToken) =>
        await ReadAsync("""
            SELECT model, MIN(provider), COUNT(*), CAST(SUM(CASE WHEN status <> 'ok' THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT),
                   COALESCE(SUM(cost), 0), AVG(latency_ms)
            FROM workload_calls WHERE user_id = @u GROUP BY model ORDER BY COALESCE(SUM(cost), 0) DESC, model
            """, r => new ModelStats(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetInt64(3), r.GetInt64(4), r.GetInt64(5), r.GetDouble(6), r.GetDouble(7)),
            cancellationToken, ("@u", userId));

    public async Task<IReadOnlyList<CostGroup>> GetCostBreakdownAsync(string userId, string groupBy, CancellationToken cancellationToken)
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
        var rows = await ReadAsync($"SELECT {key}, COUNT(*), COALESCE(SUM(cost), 0) FROM workload_calls WHERE user_id = @u GROUP BY {key} ORDER BY {(groupBy == "day" ? "1" : "3 DESC, 1")}",
            r => new CostGroup(groupBy == "day" ? DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0) * 86_400_000).ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) : r.GetString(0),
                r.GetInt64(1), r.GetDouble(2)), cancellationToken, ("@u", userId));
        return rows;
    }

    public async Task<IReadOnlyDictionary<string, double[]>> GetLatenciesByModelAsync(string userId, CancellationToken cancellationToken)
    {
        var rows = await ReadAsync("SELECT model, latency_ms FROM workload_calls WHERE user_id = @u ORDER BY model, latency_ms",
            r => (Model: r.GetString(0), Latency: r.GetDouble(1)), cancellationToken, ("@u", userId));
        return rows.GroupBy(r => r.Model).ToDictionary(g => g.Key, g => g.Select(r => r.Latency).ToArray());
    }

    public async Task<IReadOnlyList<(string Model, string Status, long Calls)>> GetErrorCountsAsync(string userId, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT model, status, COUNT(*) FROM workload_calls WHERE user_id = @u AND status <> 'ok' GROUP BY model, status ORDER BY 3 DESC, 1, 2",
            r => (r.GetString(0), r.GetString(1), r.GetInt64(2)), cancellationToken, ("@u", userId));

    public async Task<IReadOnlyList<RepeatedPrompt>> GetRepeatedPromptsAsync(string userId, CancellationToken cancellationToken) =>
        await ReadAsync("""
            SELECT prompt_hash, model, COUNT(*), COALESCE(SUM(cost), 0), COALESCE(MIN(cost), 0)
            FROM workload_calls WHERE user_id = @u AND prompt_hash IS NOT NULL AND status = 'ok'
            GROUP BY prompt_hash, model HAVING COUNT(*) > 1 ORDER BY 4 DESC, 1, 2
            """, r => new RepeatedPrompt(r.GetString(0), r.GetString(1), r.GetInt64(2), r.GetDouble(3), r.GetDouble(4)), cancellationToken, ("@u", userId));

    public async Task<IReadOnlyList<HourlyCost>> GetHourlyCostAsync(string userId, CancellationToken cancellationToken) =>
        await ReadAsync("SELECT CAST(ts / 3600000 AS BIGINT), COUNT(*), COALESCE(SUM(cost), 0) FROM workload_calls WHERE user_id = @u GROUP BY 1 ORDER BY 1",
            r => new HourlyCost(DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(0) * 3_600_000), r.GetInt64(1), r.GetDouble(2)), cancellationToken, ("@u", userId));

    // ---- Helpers ----

    private static Task<int> InsertMessageAsync(DbConnection c, DbTransaction? t, MessageRecord m, CancellationToken cancellationToken) =>
        c.ExecuteAsync($"INSERT INTO messages ({MessageColumns}) VALUES (@id, @t, @u, @r, @role, @content, @ca)", t, cancellationToken,
            ("@id", m.Id), ("@t", m.ThreadId), ("@u", m.UserId), ("@r", m.RunId), ("@role", m.Role), ("@content", m.Content), ("@ca", m.CreatedAt.ToUnixMs()));

    private async Task<List<T>> ReadAsync<T>(string sql, Func<DbDataReader, T> map, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        await using var connection = await db.OpenAsync(cancellationToken);
        return await connection.QueryAsync(sql, null, map, cancellationToken, parameters);
    }

    private async Task<T?> ReadSingleAsync<T>(string sql, Func<DbDataReader, T> map, CancellationToken cancellationToken, params (string, object?)[] parameters) where T : class
    {
        await using var connection = await db.OpenAsync(cancellationToken);
        return await connection.QuerySingleAsync(sql, null, map, cancellationToken, parameters);
    }

    private static UserRecord ReadUser(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.Time(6), r.GetInt32(7), r.TimeOrNull(8));

    private static SessionRecord ReadSession(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.Time(3), r.Time(4), r.TimeOrNull(5));

    private static ThreadRecord ReadThread(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4), r.Time(5), r.Time(6));

    private static MessageRecord ReadMessage(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.StringOrNull(3), r.GetString(4), r.GetString(5), r.Time(6));

    private static RunRecord ReadRun(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.Time(6),
            r.TimeOrNull(7), r.TimeOrNull(8), r.StringOrNull(9), r.StringOrNull(10), r.GetInt64(11) != 0, r.FieldCount > 12 ? r.StringOrNull(12) : null);

    private static ApexEvent ReadEvent(DbDataReader r) =>
        JsonSerializer.Deserialize(r.GetString(0), ApexJsonContext.Default.ApexEvent)!;
}
