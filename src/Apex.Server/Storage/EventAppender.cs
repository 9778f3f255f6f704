using System.Data.Common;
using System.Text.Json;
using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>
/// The one way an event row is written, inside the caller's transaction: seq per thread, the tool usage row of a
/// <c>tool_completed</c>, a terminal event's run status, and the notifications other nodes wait for.
/// </summary>
internal sealed class EventAppender(Database db, NodeIdentity node)
{
    /// <summary>Appends inside the caller's transaction: the one way an event row is written.</summary>
    public async Task<IReadOnlyList<ApexEvent>> AppendAsync(DbConnection c, DbTransaction? t, IReadOnlyList<EventAppend> events, CancellationToken cancellationToken)
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
            foreach (var (thread, seq) in lastSeq) await db.NotifyAsync(c, t, StoreSignals.EventsChannel, $"{node.Id}|{thread}|{seq}", cancellationToken);
            if (endedRuns) await db.NotifyAsync(c, t, StoreSignals.RunsChannel, node.Id, cancellationToken);
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
}
