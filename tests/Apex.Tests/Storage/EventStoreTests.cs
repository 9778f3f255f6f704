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
}

public sealed class SqliteEventStoreTests : EventStoreTests<SqliteTestDatabase>;

public sealed class PostgresEventStoreTests : EventStoreTests<PostgresTestDatabaseForStores>;
