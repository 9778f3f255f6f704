using System.Text.Json;
using Apex.Client;
using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>
/// Migration 9 converts the events a database of the previous schema holds (the whole envelope as JSON in <c>payload</c>)
/// in place: read back, each is the envelope it was stored as, byte for byte. Migration 10 drops what is stored twice: a
/// run's results read back from its agent_completed events, the usage rows keep their sums without their ids.
/// </summary>
public abstract class EventMigrationTests<TDatabase> : IAsyncLifetime where TDatabase : ITestDatabase, new()
{
    private readonly TDatabase _test = new();
    private Database _database = null!;

    public async Task InitializeAsync()
    {
        _database = await _test.CreateAsync();
        Assert.Equal(8, await Migrations.ApplyAsync(_database, TimeProvider.System, 8, default));
    }

    public async Task DisposeAsync()
    {
        await _database.DisposeAsync();
        await _test.DisposeAsync();
    }

    [Fact]
    public async Task EventsStoredByThePreviousSchemaReadBackAsTheSameEnvelopes()
    {
        const string user = "01a235ff-d84d-7000-9c46-9f8872036903", thread = "01a235ff-d8f3-7000-87df-2e8807e3d6d6", run = "01a235ff-d90f-700f-9bd9-52784a540982";
        // Ids the server did not make (an older client's, or written by hand) keep their text.
        const string legacyThread = "legacy-thread-1", legacyRun = "Run-ABC";
        var at = new DateTimeOffset(2026, 12, 2, 9, 4, 49, TimeSpan.Zero);
        using var triage = JsonDocument.Parse("""{"category":"cost","intent":"advice","note":"it's"}""");
        using var result = JsonDocument.Parse("""{"calls":0,"models":[],"note":"it\u0027s \"quoted\" — é 日本 🚀","nested":{"a":[1,2.5,-3e-7,true,null]}}""");
        ApexEvent[] old =
        [
            new RunQueued(new RunQueuedData("01a235ff-d9e0-7011-b5c6-526888c36a74", "enqueue", 0)) { Timestamp = at.AddTicks(5218492) },
            new AgentThinking(new AgentThinkingData("Intent advice: data_helper -> reporting.")) { AgentName = "supervisor", Timestamp = at.AddTicks(6465430) },
            new ToolCompleted(new ToolCompletedData("call_triage_0", "workload_summary", "ok", 12.141, result.RootElement.Clone(), null)) { AgentName = "triage", Timestamp = at },
            new AgentCompleted(new AgentCompletedData("triage", "ok", 3.25, triage.RootElement.Clone())) { AgentName = "triage", Timestamp = at.AddTicks(7) },
            new AgentCompleted(new AgentCompletedData("supervisor", "ok", 9.5, result.RootElement.Clone())) { AgentName = "supervisor", Timestamp = at.AddTicks(8) },
            new MessageDelta(new MessageDeltaData("01a235ff-d9e0-7011-b5c6-526888c36a74", "I can't analyse \"it\" yet.\n")) { AgentName = "reporting", Timestamp = at.AddTicks(1) },
            new RunCompleted(new RunCompletedData("01a235ff-d9e0-7011-b5c6-526888c36a74", 140.2026, null, null)) { Timestamp = at.AddMilliseconds(140) },
        ];
        var stored = new List<(string Thread, string Payload)>();
        await _database.WriteAsync(async (c, t) =>
        {
            await c.ExecuteAsync("INSERT INTO users (id, email, normalized_email, password_hash, display_name, tier, created_at) VALUES (@id, 'a@x', 'A@X', 'h', 'a', 'free', 0)",
                t, default, ("@id", user));
            foreach (var (threadId, runId) in new[] { (thread, run), (legacyThread, legacyRun) })
            {
                await c.ExecuteAsync("INSERT INTO threads (id, user_id, title, strategy, last_seq, created_at, updated_at) VALUES (@id, @u, 't', 'enqueue', @n, 0, 0)",
                    t, default, ("@id", threadId), ("@u", user), ("@n", old.Length + 1));
                await c.ExecuteAsync("""
                    INSERT INTO runs (id, thread_id, user_id, status, strategy, message_id, created_at, results) VALUES (@id, @t, @u, 'completed', 'enqueue', 'm', 0, @res)
                    """, t, default, ("@id", runId), ("@t", threadId), ("@u", user), ("@res", $$"""{"triage":{{triage.RootElement.GetRawText()}}}"""));
                await c.ExecuteAsync("""
                    INSERT INTO model_usage (id, user_id, run_id, agent, model, calls, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost, created_at)
                    VALUES (@id, @u, @r, 'triage', 'gpt-4o', 2, 700, 50, 0, 0, 0.25, 1000)
                    """, t, default, ("@id", Guid.CreateVersion7().ToString()), ("@u", user), ("@r", runId));
                await c.ExecuteAsync("INSERT INTO tool_usage (id, user_id, run_id, tool, status, duration_ms, created_at) VALUES (@id, @u, @r, 'workload_summary', 'ok', 12.5, 1000)",
                    t, default, ("@id", $"tool-{runId}"), ("@u", user), ("@r", runId));
                var seq = 0;
                foreach (var evt in old)
                {
                    var envelope = evt with { EventId = Guid.CreateVersion7().ToString(), Seq = ++seq, ThreadId = threadId, RunId = runId, UserId = user };
                    var payload = JsonSerializer.Serialize(envelope, ApexJsonContext.Default.ApexEvent);
                    stored.Add((threadId, payload));
                    await c.ExecuteAsync("INSERT INTO events (thread_id, seq, user_id, run_id, type, payload, created_at) VALUES (@t, @s, @u, @r, @ty, @p, 0)",
                        t, default, ("@t", threadId), ("@s", (long)seq), ("@u", user), ("@r", runId), ("@ty", envelope.Type), ("@p", payload));
                }
                // An event without a run (the schema allowed it).
                var loose = new AgentThinking(new AgentThinkingData("no run")) { EventId = Guid.CreateVersion7().ToString(), Seq = ++seq, ThreadId = threadId, UserId = user, Timestamp = at };
                var loosePayload = JsonSerializer.Serialize<ApexEvent>(loose, ApexJsonContext.Default.ApexEvent);
                stored.Add((threadId, loosePayload));
                await c.ExecuteAsync("INSERT INTO events (thread_id, seq, user_id, run_id, type, payload, created_at) VALUES (@t, @s, @u, NULL, @ty, @p, 0)",
                    t, default, ("@t", threadId), ("@s", (long)seq), ("@u", user), ("@ty", loose.Type), ("@p", loosePayload));
            }
            return 0;
        }, default);

        Assert.Equal(Migrations.Latest - 8, await Migrations.ApplyAsync(_database, TimeProvider.System, default));

        var events = new SqlEventStore(_database, new NodeIdentity());
        foreach (var threadId in new[] { thread, legacyThread })
        {
            var read = await events.ReadEventsAsync(user, threadId, 0, 100, default);
            Assert.Equal(stored.Where(s => s.Thread == threadId).Select(s => s.Payload), read.Select(e => JsonSerializer.Serialize(e, ApexJsonContext.Default.ApexEvent)));
            Assert.Empty(await events.ReadEventsAsync("01a235ff-d84d-7000-9c46-000000000000", threadId, 0, 100, default));
        }
        Assert.Equal(old.Length, (await events.ReadRunEventsAsync(user, legacyRun, default)).Count);

        // The run's results are its agents' (the supervisor's is not among them), read from their events; another user reads no run.
        var runs = new SqlRunStore(_database, new NodeIdentity());
        foreach (var runId in new[] { run, legacyRun })
        {
            var results = JsonDocument.Parse(Assert.IsType<string>((await runs.GetRunAsync(user, runId, default))!.Results)).RootElement;
            Assert.Equal(["triage"], results.EnumerateObject().Select(p => p.Name));
            Assert.True(JsonElement.DeepEquals(triage.RootElement, results.GetProperty("triage")));
            Assert.Null(await runs.GetRunAsync("01a235ff-d84d-7000-9c46-000000000000", runId, default));
        }
        Assert.Equal(["triage"], JsonDocument.Parse((await runs.ListRunsAsync(user, thread, 10, null, default)).Single().Results!).RootElement.EnumerateObject().Select(p => p.Name));
        var usage = await new SqlUsageStore(_database).TotalSinceAsync(user, DateTimeOffset.FromUnixTimeMilliseconds(0), default);
        Assert.Equal((1500L, 0.5), (usage.Tokens, usage.Cost));
        var tools = await new SqlUsageStore(_database).ListToolUsageAsync(user, 10, null, default);
        Assert.Equal([$"tool-{legacyRun}", $"tool-{run}"], tools.Select(u => u.Id)); // newest (greatest) id first

        // The converted rows take new appends after them, and go with their thread.
        var appended = await events.AppendEventsAsync([new EventAppend(new AgentThinking(new AgentThinkingData("after")) { EventId = Guid.CreateVersion7().ToString(),
            ThreadId = legacyThread, RunId = legacyRun, UserId = user, Timestamp = DateTimeOffset.UtcNow })], default);
        Assert.Equal(old.Length + 2, Assert.Single(appended).Seq);
        Assert.True(await new SqlThreadStore(_database).DeleteThreadAsync(user, legacyThread, default));
        await using (var connection = await _database.OpenAsync(default))
            Assert.Equal(old.Length + 1, await connection.ScalarAsync("SELECT COUNT(*) FROM events", null, default));
        Assert.Equal(old.Length + 1, (await events.ReadEventsAsync(user, thread, 0, 100, default)).Count);
    }
}

public sealed class SqliteEventMigrationTests : EventMigrationTests<SqliteTestDatabase>;

public sealed class PostgresEventMigrationTests : EventMigrationTests<PostgresTestDatabaseForStores>;
