using Apex.Client;
using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>Runs: claims and leases: the same tests on SQLite and PostgreSQL.</summary>
public abstract class RunStoreTests<TDatabase> : StoreTests<TDatabase> where TDatabase : ITestDatabase, new()
{
    [Fact]
    public async Task ClaimsRunOneRunPerThreadInOrderWithinTheUserLimit()
    {
        var user = await UserAsync();
        var threadA = await ThreadAsync(user);
        var threadB = await ThreadAsync(user);
        var a1 = await SubmitAsync(user, threadA);
        var a2 = await SubmitAsync(user, threadA);
        var b1 = await SubmitAsync(user, threadB);

        var first = await Runs.ClaimNextRunAsync("n1", 1, _now, _now.AddSeconds(15), default);
        Assert.Equal(a1.Id, first!.Id);
        Assert.Null(await Runs.ClaimNextRunAsync("n2", 1, _now, _now.AddSeconds(15), default)); // user limit 1
        Assert.Equal(b1.Id, (await Runs.ClaimNextRunAsync("n2", 2, _now, _now.AddSeconds(15), default))!.Id);
        Assert.Null(await Runs.ClaimNextRunAsync("n2", 5, _now, _now.AddSeconds(15), default)); // a2 waits behind a1

        var rejected = new RunRecord(_ids.NewId(), threadA, user, RunStatus.Queued, QueueStrategies.Reject, "m", _now, null, null, null, null, false);
        var busy = await Runs.SubmitRunAsync(new MessageRecord(_ids.NewId(), threadA, user, null, "user", "x", _now), rejected, Queued(rejected, "m"), 10, default);
        Assert.Equal((SubmitOutcome.ThreadBusy, null), (busy.Outcome, busy.Queued));

        await Events.AppendEventsAsync([new EventAppend(new RunCompleted(new RunCompletedData("m", 1)) { EventId = Guid.NewGuid().ToString(), ThreadId = threadA, RunId = a1.Id, UserId = user, Timestamp = _now })], default);
        Assert.Equal(a2.Id, (await Runs.ClaimNextRunAsync("n1", 5, _now, _now.AddSeconds(15), default))!.Id);
    }

    [Fact]
    public async Task LeasesRenewCancellationIsSeenAndExpiredRunsAreTakenOverOnce()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var run = await SubmitAsync(user, thread);
        await Runs.ClaimNextRunAsync("n1", 5, _now, _now.AddSeconds(15), default);

        Assert.Empty(await Runs.RenewLeasesAsync("n1", [run.Id], _now.AddSeconds(30), default));
        Assert.True(await Runs.RequestCancelAsync(user, run.Id, "x", default));
        Assert.Equal([run.Id], await Runs.RenewLeasesAsync("n1", [run.Id], _now.AddSeconds(30), default));
        Assert.Empty(await Runs.RenewLeasesAsync("n2", [run.Id], _now.AddSeconds(30), default)); // not n2's run

        Assert.Empty(await Runs.FindOrphanedRunsAsync(_now.AddSeconds(20), false, default));
        Assert.Single(await Runs.FindOrphanedRunsAsync(_now.AddSeconds(31), false, default));
        Assert.False(await Runs.TryTakeOverRunAsync(run.Id, "n2", _now.AddSeconds(20), _now.AddSeconds(35), false, default));
        Assert.True(await Runs.TryTakeOverRunAsync(run.Id, "n2", _now.AddSeconds(31), _now.AddSeconds(46), false, default));
        Assert.False(await Runs.TryTakeOverRunAsync(run.Id, "n3", _now.AddSeconds(31), _now.AddSeconds(46), false, default));
    }
}

public sealed class SqliteRunStoreTests : RunStoreTests<SqliteTestDatabase>;

public sealed class PostgresRunStoreTests : RunStoreTests<PostgresTestDatabaseForStores>;
