using System.Data.Common;
using Apex.Client;
using Npgsql;

namespace Apex.Server.Storage;

/// <summary>
/// The one way an event row is written, inside the caller's transaction: seq per thread, the tool usage row of a
/// <c>tool_completed</c>, a terminal event's run status, and the notifications other nodes wait for.
/// </summary>
/// <remarks>
/// Both paths take rows in the global lock order (see <see cref="PostgresDatabase"/>): first the run rows of the batch's
/// terminal events, by run id, then the thread rows, by thread id. On PostgreSQL a batch costs a fixed number of round
/// trips whatever its size: the run rows in one statement, each thread's seq range in one statement
/// (<c>last_seq = last_seq + n</c>), then the events, the tool usage rows and the notifications in one pipelined batch.
/// SQLite has a single writer and no network: its per-event prepared statements are the faster path there.
/// </remarks>
internal sealed class EventAppender(Database db, NodeIdentity node)
{
    /// <summary>Appends inside the caller's transaction: the one way an event row is written.</summary>
    public async Task<IReadOnlyList<ApexEvent>> AppendAsync(DbConnection c, DbTransaction? t, IReadOnlyList<EventAppend> events, CancellationToken cancellationToken)
    {
        if (events.Count == 0) return [];
        return c is NpgsqlConnection npgsql
            ? await AppendBatchAsync(npgsql, (NpgsqlTransaction?)t, events, cancellationToken)
            : await AppendEachAsync(c, t, events, cancellationToken);
    }

    /// <summary>The events of one batch grouped by thread in thread id order, each thread's in the order they came.</summary>
    private static IEnumerable<IGrouping<(string Thread, string User), ApexEvent>> ByThread(IEnumerable<ApexEvent> events) =>
        events.GroupBy(e => (e.ThreadId!, e.UserId!)).OrderBy(g => g.Key.Item1, StringComparer.Ordinal).ThenBy(g => g.Key.Item2, StringComparer.Ordinal);

    private static (string Status, string? Error) Outcome(ApexEvent terminal) => terminal switch
    {
        RunCompleted => (RunStatus.Completed, null),
        RunFailed f => (RunStatus.Failed, $"{f.Data.Reason}: {f.Data.Message}"),
        RunCancelled x => (RunStatus.Cancelled, x.Data.Reason),
        _ => throw new ArgumentException($"{terminal.Type} is not terminal."),
    };

    /// <summary>The event as stored and sent: its seq, and its time in UTC (as it is rebuilt on read, so a replay is byte-identical).</summary>
    private static ApexEvent Stamp(ApexEvent evt, long seq) => evt with { Seq = seq, Timestamp = evt.Timestamp.ToUniversalTime() };

    private string EventsNotice(string thread, long seq) => $"{node.Id}|{thread}|{seq}";

    // ---- SQLite: one writer, prepared statements, one event at a time ----

    private async Task<IReadOnlyList<ApexEvent>> AppendEachAsync(DbConnection c, DbTransaction? t, IReadOnlyList<EventAppend> events, CancellationToken cancellationToken)
    {
        // Runs first: a terminal event whose run is no longer in the expected state is dropped before it takes a seq.
        var dropped = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (evt, expected) in events.Where(e => e.Event.IsTerminal).OrderBy(e => e.Event.RunId, StringComparer.Ordinal))
            if (!await EndRunAsync(c, t, evt, expected ?? RunStatus.Running, cancellationToken)) dropped.Add(evt.EventId!);

        var stored = new List<ApexEvent>(events.Count);
        var lastSeq = new List<(string Thread, long Seq)>();
        // The two hottest statements of the server: rented, so that the connection keeps them prepared.
        var next = c.RentCommand(t, "UPDATE threads SET last_seq = last_seq + @n WHERE id = @t AND user_id = @u RETURNING last_seq", "@n", "@t", "@u");
        var insert = c.RentCommand(t, "INSERT INTO events (thread_id, seq, run_id, event_id, type, agent, at, data) VALUES (@t, @s, @r, @e, @ty, @a, @at, @d)",
            "@t", "@s", "@r", "@e", "@ty", "@a", "@at", "@d");
        try
        {
            foreach (var thread in ByThread(events.Select(e => e.Event).Where(e => !dropped.Contains(e.EventId!))))
            {
                // The thread row is the per-thread sequence: taking the batch's range of it in the same transaction as the inserts keeps seq gapless.
                var count = thread.Count();
                next.Parameters[0].Value = (long)count;
                next.Parameters[1].Value = thread.Key.Thread;
                next.Parameters[2].Value = thread.Key.User;
                var last = await next.ExecuteScalarAsync(cancellationToken);
                if (last is null or DBNull) continue; // the thread was deleted under a running run: nothing left to append to
                var seq = Convert.ToInt64(last, System.Globalization.CultureInfo.InvariantCulture) - count;
                byte[]? threadKey = null;
                foreach (var evt in thread)
                {
                    var stamped = Stamp(evt, ++seq);
                    object?[] values = [threadKey ??= EventCodec.Id(stamped.ThreadId!), stamped.Seq, EventCodec.IdOrNull(stamped.RunId), EventCodec.Id(stamped.EventId!),
                        EventCodec.TypeCode(stamped.Type), stamped.AgentName, EventCodec.Ticks(stamped.Timestamp), EventCodec.Data(stamped)];
                    for (var i = 0; i < values.Length; i++) insert.Parameters[i].Value = values[i] ?? DBNull.Value;
                    await insert.ExecuteNonQueryAsync(cancellationToken);
                    if (stamped is ToolCompleted tool) await RecordToolUsageAsync(c, t, tool, cancellationToken);
                    stored.Add(stamped);
                }
                lastSeq.Add((thread.Key.Thread, seq));
            }
        }
        finally
        {
            await next.ReturnCommandAsync();
            await insert.ReturnCommandAsync();
        }
        foreach (var (thread, seq) in lastSeq) await db.NotifyAsync(c, t, StoreSignals.EventsChannel, EventsNotice(thread, seq), cancellationToken);
        if (stored.Any(e => e.IsTerminal)) await db.NotifyAsync(c, t, StoreSignals.RunsChannel, node.Id, cancellationToken);
        return stored;
    }

    /// <summary>The usage log is written with the tool_completed event it comes from, so the two never disagree.</summary>
    private static Task<int> RecordToolUsageAsync(DbConnection c, DbTransaction? t, ToolCompleted tool, CancellationToken cancellationToken) =>
        c.ExecuteAsync("INSERT INTO tool_usage (id, user_id, run_id, tool, status, duration_ms, created_at) VALUES (@id, @u, @r, @tool, @s, @d, @ca)",
            t, cancellationToken, ("@id", tool.EventId), ("@u", tool.UserId), ("@r", tool.RunId ?? ""), ("@tool", tool.Data.Tool), ("@s", tool.Data.Status),
            ("@d", tool.Data.DurationMs), ("@ca", tool.Timestamp.ToUnixMs()));

    private static async Task<bool> EndRunAsync(DbConnection c, DbTransaction? t, ApexEvent terminal, string expectedStatus, CancellationToken cancellationToken)
    {
        var (status, error) = Outcome(terminal);
        return await c.ExecuteAsync("UPDATE runs SET status = @s, error = @e, ended_at = @now, lease_until = NULL, checkpoint = NULL WHERE id = @id AND user_id = @u AND status = @expected",
            t, cancellationToken, ("@s", status), ("@e", error), ("@now", terminal.Timestamp.ToUnixMs()), ("@id", terminal.RunId), ("@u", terminal.UserId),
            ("@expected", expectedStatus)) == 1;
    }

    // ---- PostgreSQL: a fixed number of round trips per batch ----

    private async Task<IReadOnlyList<ApexEvent>> AppendBatchAsync(NpgsqlConnection c, NpgsqlTransaction? t, IReadOnlyList<EventAppend> events, CancellationToken cancellationToken)
    {
        var dropped = await EndRunsAsync(c, t, events, cancellationToken);
        var kept = events.Select(e => e.Event).Where(e => !dropped.Contains(e.EventId!)).ToList();
        if (kept.Count == 0) return [];

        // Each thread's seq range in one statement: last_seq = last_seq + n, locked in thread id order.
        var threads = ByThread(kept).ToList();
        var lastSeq = new Dictionary<(string, string), long>();
        await using (var batch = new NpgsqlBatch(c, t))
        {
            string[] ids = [.. threads.Select(g => g.Key.Thread)], users = [.. threads.Select(g => g.Key.User)];
            batch.BatchCommands.Add(Command("""
                SELECT t.id FROM threads t JOIN unnest($1::text[], $2::text[]) AS u(id, user_id) ON t.id = u.id AND t.user_id = u.user_id
                ORDER BY t.id FOR NO KEY UPDATE OF t
                """, ids, users));
            batch.BatchCommands.Add(Command("""
                UPDATE threads SET last_seq = threads.last_seq + u.n
                FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, user_id, n)
                WHERE threads.id = u.id AND threads.user_id = u.user_id
                RETURNING threads.id, threads.user_id, threads.last_seq
                """, ids, users, threads.Select(g => (long)g.Count()).ToArray()));
            await using var reader = await batch.ExecuteReaderAsync(cancellationToken);
            await reader.NextResultAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken)) lastSeq[(reader.GetString(0), reader.GetString(1))] = reader.GetInt64(2);
        }

        var stored = new List<ApexEvent>(kept.Count);
        var notices = new List<(string Channel, string Payload)>();
        foreach (var thread in threads)
        {
            // A thread deleted under a running run: nothing left to append to.
            if (!lastSeq.TryGetValue(thread.Key, out var last)) continue;
            var seq = last - thread.Count();
            foreach (var evt in thread) stored.Add(Stamp(evt, ++seq));
            notices.Add((StoreSignals.EventsChannel, EventsNotice(thread.Key.Thread, last)));
        }
        if (stored.Count == 0) return stored;
        if (stored.Any(e => e.IsTerminal)) notices.Add((StoreSignals.RunsChannel, node.Id));

        // The rows and the notifications in one round trip.
        await using (var batch = new NpgsqlBatch(c, t))
        {
            batch.BatchCommands.Add(Command("""
                INSERT INTO events (thread_id, seq, run_id, event_id, type, agent, at, data)
                SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bytea[], $5::smallint[], $6::text[], $7::bigint[], $8::bytea[])
                """, stored.Select(e => EventCodec.Id(e.ThreadId!)).ToArray(), stored.Select(e => e.Seq).ToArray(), stored.Select(e => EventCodec.IdOrNull(e.RunId)).ToArray(),
                stored.Select(e => EventCodec.Id(e.EventId!)).ToArray(), stored.Select(e => EventCodec.TypeCode(e.Type)).ToArray(), stored.Select(e => e.AgentName).ToArray(),
                stored.Select(e => EventCodec.Ticks(e.Timestamp)).ToArray(), stored.Select(EventCodec.Data).ToArray()));
            var tools = stored.OfType<ToolCompleted>().ToList();
            if (tools.Count > 0)
            {
                // The usage log is written with the tool_completed event it comes from, so the two never disagree.
                batch.BatchCommands.Add(Command("""
                    INSERT INTO tool_usage (id, user_id, run_id, tool, status, duration_ms, created_at)
                    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::double precision[], $7::bigint[])
                    """, tools.Select(e => e.EventId!).ToArray(), tools.Select(e => e.UserId!).ToArray(), tools.Select(e => e.RunId ?? "").ToArray(),
                    tools.Select(e => e.Data.Tool).ToArray(), tools.Select(e => e.Data.Status).ToArray(), tools.Select(e => e.Data.DurationMs).ToArray(),
                    tools.Select(e => e.Timestamp.ToUnixMs()).ToArray()));
            }
            if (!db.TryDeferNotices(t, notices.Select(n => new Notice(n.Channel, n.Payload))))
                batch.BatchCommands.Add(Command("SELECT pg_notify(n.c, n.p) FROM unnest($1::text[], $2::text[]) AS n(c, p)",
                    notices.Select(n => n.Channel).ToArray(), notices.Select(n => n.Payload).ToArray()));
            await batch.ExecuteNonQueryAsync(cancellationToken);
        }
        return stored;
    }

    /// <summary>
    /// Ends the runs of the batch's terminal events, run rows locked in id order, in one round trip; returns the ids of the
    /// terminal events to drop (their run was no longer in the expected state). A run with two terminal events in one batch
    /// (its own and a recovery's) takes them one round at a time, so that the first one that matches wins, as in order.
    /// </summary>
    private static async Task<HashSet<string>> EndRunsAsync(NpgsqlConnection c, NpgsqlTransaction? t, IReadOnlyList<EventAppend> events, CancellationToken cancellationToken)
    {
        var dropped = new HashSet<string>(StringComparer.Ordinal);
        var pending = events.Where(e => e.Event.IsTerminal).ToList();
        var ended = new HashSet<string>(StringComparer.Ordinal);
        while (pending.Count > 0)
        {
            var round = pending.DistinctBy(e => e.Event.RunId).OrderBy(e => e.Event.RunId, StringComparer.Ordinal).ToList();
            string[] ids = [.. round.Select(e => e.Event.RunId!)], users = [.. round.Select(e => e.Event.UserId!)];
            await using var batch = new NpgsqlBatch(c, t);
            batch.BatchCommands.Add(Command("""
                SELECT r.id FROM runs r JOIN unnest($1::text[], $2::text[]) AS u(id, user_id) ON r.id = u.id AND r.user_id = u.user_id
                ORDER BY r.id FOR NO KEY UPDATE OF r
                """, ids, users));
            batch.BatchCommands.Add(Command("""
                UPDATE runs SET status = u.status, error = u.error, ended_at = u.ended_at, lease_until = NULL, checkpoint = NULL
                FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS u(id, user_id, status, error, ended_at, expected)
                WHERE runs.id = u.id AND runs.user_id = u.user_id AND runs.status = u.expected
                RETURNING runs.id
                """, ids, users, round.Select(e => Outcome(e.Event).Status).ToArray(), round.Select(e => Outcome(e.Event).Error).ToArray(),
                round.Select(e => e.Event.Timestamp.ToUnixMs()).ToArray(), round.Select(e => e.ExpectedRunStatus ?? RunStatus.Running).ToArray()));
            var matched = new HashSet<string>(StringComparer.Ordinal);
            await using (var reader = await batch.ExecuteReaderAsync(cancellationToken))
            {
                await reader.NextResultAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken)) matched.Add(reader.GetString(0));
            }
            foreach (var e in round)
            {
                if (matched.Contains(e.Event.RunId!)) ended.Add(e.Event.RunId!);
                else dropped.Add(e.Event.EventId!);
            }
            pending = [.. pending.Except(round).Where(e => { if (!ended.Contains(e.Event.RunId!)) return true; dropped.Add(e.Event.EventId!); return false; })];
        }
        return dropped;
    }

    private static NpgsqlBatchCommand Command(string sql, params object[] arrays)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var array in arrays) command.Parameters.Add(new NpgsqlParameter { Value = array });
        return command;
    }
}
