using Apex.Client;
using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>The event log: the same tests on SQLite and PostgreSQL.</summary>
public abstract class EventStoreTests<TDatabase> : StoreTests<TDatabase> where TDatabase : ITestDatabase, new()
{
    [Fact]
    public async Task SeqIsGaplessAndUniqueUnderConcurrentAppends()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var other = await ThreadAsync(user);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 25; i++)
                await Events.AppendEventsAsync([new EventAppend(Event(user, thread)), new EventAppend(Event(user, other)), new EventAppend(Event(user, thread))], default);
        })));
        var events = await Events.ReadEventsAsync(user, thread, 0, 1000, default);
        Assert.Equal(Enumerable.Range(1, 400).Select(i => (long)i), events.Select(e => e.Seq));
        Assert.Equal(400, events.Select(e => e.EventId).Distinct().Count());
        Assert.Equal(200, (await Events.ReadEventsAsync(user, other, 0, 1000, default)).Count);
        Assert.Equal(400, (await Threads.GetThreadAsync(user, thread, default))!.LastSeq);
    }

    [Fact]
    public async Task ATerminalEventEndsItsRunExactlyOnceFromTheExpectedStatus()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var run = await SubmitAsync(user, thread);
        ApexEvent Terminal() => new RunCancelled(new RunCancelledData("test")) { EventId = Guid.NewGuid().ToString(), ThreadId = thread, RunId = run.Id, UserId = user, Timestamp = DateTimeOffset.UtcNow };

        Assert.Empty(await Events.AppendEventsAsync([new EventAppend(Terminal(), RunStatus.Running)], default));
        Assert.Single(await Events.AppendEventsAsync([new EventAppend(Terminal(), RunStatus.Queued)], default));
        Assert.Empty(await Events.AppendEventsAsync([new EventAppend(Terminal(), RunStatus.Queued)], default));
        var ended = await Runs.GetRunAsync(user, run.Id, default);
        Assert.Equal(RunStatus.Cancelled, ended!.Status);
        Assert.Equal("test", ended.Error);
        Assert.Single(await Events.ReadEventsAsync(user, thread, 0, 10, default), e => e.IsTerminal);
    }

    [Fact]
    public async Task OneBatchAcrossThreadsAndRunsKeepsEachThreadsOrderAndEndsEachRunOnce()
    {
        var user = await UserAsync();
        var threadA = await ThreadAsync(user);
        var threadB = await ThreadAsync(user);
        var runA = await SubmitAsync(user, threadA);
        var runB = await SubmitAsync(user, threadB);
        var otherUser = await UserAsync();
        ApexEvent Cancelled(RunRecord run) =>
            new RunCancelled(new RunCancelledData("test")) { EventId = Guid.NewGuid().ToString(), ThreadId = run.ThreadId, RunId = run.Id, UserId = user, Timestamp = DateTimeOffset.UtcNow };
        var tool = new ToolCompleted(new ToolCompletedData("c1", "cost_breakdown", "ok", 1.5, null, null))
        { EventId = Guid.NewGuid().ToString(), ThreadId = threadB, RunId = runB.Id, UserId = user, Timestamp = DateTimeOffset.UtcNow };
        var b1 = Event(user, threadB, runB.Id);
        var a1 = Event(user, threadA, runA.Id);
        var endA = Cancelled(runA);
        var endATwice = Cancelled(runA); // a second terminal for the same run in the same batch: dropped
        var endB = Cancelled(runB);
        var foreign = Event(otherUser, threadA); // another user's event on this thread: never stored

        var stored = await Events.AppendEventsAsync(
            [new EventAppend(b1), new EventAppend(a1), new EventAppend(endA, RunStatus.Queued), new EventAppend(tool), new EventAppend(endATwice, RunStatus.Queued),
             new EventAppend(foreign), new EventAppend(endB, RunStatus.Running)], default);

        // runB is queued, not running: its terminal is dropped; runA ends once.
        Assert.Equal(new[] { a1.EventId, endA.EventId, b1.EventId, tool.EventId }.Order(), stored.Select(e => e.EventId).Order());
        Assert.Equal([a1.EventId, endA.EventId], (await Events.ReadEventsAsync(user, threadA, 1, 10, default)).Select(e => e.EventId));
        Assert.Equal([2L, 3L], (await Events.ReadEventsAsync(user, threadA, 1, 10, default)).Select(e => e.Seq));
        Assert.Equal([b1.EventId, tool.EventId], (await Events.ReadEventsAsync(user, threadB, 1, 10, default)).Select(e => e.EventId));
        Assert.Empty(await Events.ReadEventsAsync(otherUser, threadA, 0, 10, default));
        Assert.Equal(RunStatus.Cancelled, (await Runs.GetRunAsync(user, runA.Id, default))!.Status);
        Assert.Equal(RunStatus.Queued, (await Runs.GetRunAsync(user, runB.Id, default))!.Status);
        Assert.Equal(3, (await Threads.GetThreadAsync(user, threadA, default))!.LastSeq);
        var usage = Assert.Single(await new SqlUsageStore(Database).ListToolUsageAsync(user, 10, null, default));
        Assert.Equal(("cost_breakdown", runB.Id, 1.5), (usage.Tool, usage.RunId, usage.DurationMs));
    }
}

public sealed class SqliteEventStoreTests : EventStoreTests<SqliteTestDatabase>;

public sealed class PostgresEventStoreTests : EventStoreTests<PostgresTestDatabaseForStores>;
