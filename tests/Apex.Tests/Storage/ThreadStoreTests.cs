using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>Threads and messages, and owner scoping across the stores: the same tests on SQLite and PostgreSQL.</summary>
public abstract class ThreadStoreTests<TDatabase> : StoreTests<TDatabase> where TDatabase : ITestDatabase, new()
{
    [Fact]
    public async Task ThreadsMessagesRunsAndEventsAreScopedByOwner()
    {
        var owner = await UserAsync();
        var other = await UserAsync();
        var thread = await ThreadAsync(owner);
        var run = await SubmitAsync(owner, thread);
        await Events.AppendEventsAsync([new EventAppend(Event(owner, thread, run.Id))], default);

        Assert.NotNull(await Threads.GetThreadAsync(owner, thread, default));
        Assert.Null(await Threads.GetThreadAsync(other, thread, default));
        Assert.Empty(await Threads.ListThreadsAsync(other, 10, null, default));
        Assert.Null(await Threads.UpdateThreadAsync(other, thread, "stolen", null, _now, default));
        Assert.False(await Threads.DeleteThreadAsync(other, thread, default));
        Assert.Empty(await Threads.ListMessagesAsync(other, thread, 10, null, default));
        Assert.Null(await Runs.GetRunAsync(other, run.Id, default));
        Assert.Empty(await Runs.ListRunsAsync(other, thread, 10, null, default));
        Assert.Empty(await Events.ReadEventsAsync(other, thread, 0, 10, default));
        Assert.False(await Runs.RequestCancelAsync(other, run.Id, "x", default));
        Assert.Equal(["run_queued", "agent_thinking"], (await Events.ReadEventsAsync(owner, thread, 0, 10, default)).Select(e => e.Type));
        Assert.Single(await Threads.ListMessagesAsync(owner, thread, 10, null, default));
        Assert.True(await Threads.DeleteThreadAsync(owner, thread, default));
        Assert.Null(await Runs.GetRunAsync(owner, run.Id, default));
    }
}

public sealed class SqliteThreadStoreTests : ThreadStoreTests<SqliteTestDatabase>;

public sealed class PostgresThreadStoreTests : ThreadStoreTests<PostgresTestDatabaseForStores>;
