using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>Workload data: the same tests on SQLite and PostgreSQL.</summary>
public abstract class WorkloadStoreTests<TDatabase> : StoreTests<TDatabase> where TDatabase : ITestDatabase, new()
{
    [Fact]
    public async Task WorkloadQueriesReadOnlyTheOwnersRowsAndAnImportIsAllOrNothing()
    {
        var a = await UserAsync();
        var b = await UserAsync();
        WorkloadCall Call(string user, string model, double cost, string? hash = null) =>
            new(_ids.NewId(), user, "", _now, "p", model, 100, 10, 250, "ok", cost, hash, "f", null);
        await ImportAsync(a, [Call(a, "m1", 1.5, "h"), Call(a, "m1", 1.5, "h"), Call(a, "m2", 0.25)]);
        await ImportAsync(b, [Call(b, "secret-model", 100)]);
        await Assert.ThrowsAsync<ArgumentException>(() => ImportAsync(a, [Call(a, "m3", 1), Call(b, "m3", 1)]));

        var summary = await Workloads.GetWorkloadSummaryAsync(a, WorkloadFilter.None, default);
        Assert.Equal((3, 3.25), (summary.Calls, Math.Round(summary.Cost, 2)));
        Assert.Equal(["m1", "m2"], summary.Models);
        Assert.Equal(["m1", "m2"], (await Workloads.GetModelStatsAsync(a, WorkloadFilter.None, default)).Select(m => m.Model));
        Assert.Equal(3.0, (await Workloads.GetCostBreakdownAsync(a, "model", WorkloadFilter.None, default))[0].Cost, 6);
        Assert.Equal(3.25, Assert.Single(await Workloads.GetCostBreakdownAsync(a, "day", WorkloadFilter.None, default)).Cost, 6);
        Assert.Equal(["m1", "m2"], (await Workloads.GetLatenciesByModelAsync(a, WorkloadFilter.None, default)).Keys.Order());
        var repeated = Assert.Single(await Workloads.GetRepeatedPromptsAsync(a, WorkloadFilter.None, default));
        Assert.Equal((2, 3.0, 1.5), (repeated.Calls, repeated.Cost, repeated.FirstCallCost));
        Assert.Equal(3.25, Assert.Single(await Workloads.GetHourlyCostAsync(a, WorkloadFilter.None, default)).Cost, 6);

        // Filters: one model, one feature, one team, a time window (from inclusive, to exclusive), and another user's name matching nothing.
        var m1 = await Workloads.GetWorkloadSummaryAsync(a, new WorkloadFilter(Model: "m1"), default);
        Assert.Equal((2, 3.0), (m1.Calls, Math.Round(m1.Cost, 2)));
        Assert.Equal(["m1"], m1.Models);
        Assert.Equal(["f"], (await Workloads.GetWorkloadSummaryAsync(a, WorkloadFilter.None, default)).Features);
        Assert.Equal(0, (await Workloads.GetWorkloadSummaryAsync(a, new WorkloadFilter(Feature: "other"), default)).Calls);
        Assert.Equal(0, (await Workloads.GetWorkloadSummaryAsync(a, new WorkloadFilter(Team: "t"), default)).Calls);
        Assert.Equal(0, (await Workloads.GetWorkloadSummaryAsync(a, new WorkloadFilter(Model: "secret-model"), default)).Calls);
        Assert.Equal(3, (await Workloads.GetWorkloadSummaryAsync(a, new WorkloadFilter(From: _now, To: _now.AddMilliseconds(1)), default)).Calls);
        Assert.Equal(0, (await Workloads.GetWorkloadSummaryAsync(a, new WorkloadFilter(To: _now), default)).Calls);
        Assert.Equal(["m2"], (await Workloads.GetCostBreakdownAsync(a, "model", new WorkloadFilter(Model: "m2", Feature: "f"), default)).Select(g => g.Key));
        Assert.Equal(["m1"], (await Workloads.GetLatenciesByModelAsync(a, new WorkloadFilter(Model: "m1"), default)).Keys);
        Assert.Empty(await Workloads.GetRepeatedPromptsAsync(a, new WorkloadFilter(Model: "m2"), default));
        Assert.Empty(await Workloads.GetHourlyCostAsync(a, new WorkloadFilter(From: _now.AddHours(1)), default));

        Assert.IsType<UploadCommit.Committed>(await ImportAsync(a, [Call(a, "m9", 2)], replace: true));
        Assert.Equal(["m9"], (await Workloads.GetWorkloadSummaryAsync(a, WorkloadFilter.None, default)).Models);
        Assert.Equal(["secret-model"], (await Workloads.GetWorkloadSummaryAsync(b, WorkloadFilter.None, default)).Models);
        Assert.Equal(3, await Workloads.PurgeWorkloadAsync(a, 2, default)); // the replaced rows, two per transaction
        Assert.Equal(1, await Workloads.DeleteWorkloadAsync(a, 100, default));
        Assert.Equal(0, (await Workloads.GetWorkloadSummaryAsync(a, WorkloadFilter.None, default)).Calls);
        Assert.Equal(1, (await Workloads.GetWorkloadSummaryAsync(b, WorkloadFilter.None, default)).Calls);
    }

    [Fact]
    public async Task AnUploadIsInvisibleUntilCommittedAndOneUserHasOneUploadAtATime()
    {
        var a = await UserAsync();
        var b = await UserAsync();
        WorkloadCall Call(string user, string batch) => new(_ids.NewId(), user, batch, _now, "p", "m", 100, 10, 250, "ok", 1, null, null, null);
        async Task<long> CallsAsync(string user) => (await Workloads.GetWorkloadSummaryAsync(user, WorkloadFilter.None, default)).Calls;
        var lease = _now.AddMinutes(2);

        var first = _ids.NewId();
        Assert.Equal(new UploadStart.Started(0), await Workloads.BeginUploadAsync(a, first, _now, lease, default));
        Assert.True(await Workloads.StageWorkloadCallsAsync(a, first, [Call(a, first), Call(a, first)], lease, default));
        Assert.Equal(0, await CallsAsync(a));
        Assert.IsType<UploadStart.Busy>(await Workloads.BeginUploadAsync(a, _ids.NewId(), _now, lease, default));
        var other = _ids.NewId();
        Assert.IsType<UploadStart.Started>(await Workloads.BeginUploadAsync(b, other, _now, lease, default)); // another user is not held up
        await Workloads.AbortUploadAsync(b, other, default);

        Assert.True(await Workloads.StageWorkloadCallsAsync(a, first, [Call(a, first)], lease, default));
        Assert.Equal(new UploadCommit.Committed(3), await Workloads.CommitUploadAsync(a, first, false, 10, default));
        Assert.Equal(3, await CallsAsync(a));

        // Over the row limit: refused at commit, aborted, and its rows purged.
        var second = _ids.NewId();
        Assert.Equal(new UploadStart.Started(3), await Workloads.BeginUploadAsync(a, second, _now, lease, default));
        Assert.True(await Workloads.StageWorkloadCallsAsync(a, second, [Call(a, second), Call(a, second)], lease, default));
        Assert.Equal(new UploadCommit.OverRowLimit(3, 4), await Workloads.CommitUploadAsync(a, second, false, 4, default));
        Assert.False(await Workloads.StageWorkloadCallsAsync(a, second, [Call(a, second)], lease, default));
        Assert.Equal(2, await Workloads.PurgeWorkloadAsync(a, 100, default));
        Assert.Equal(3, await CallsAsync(a));

        // A staging upload whose lease ran out (its node died) gives way; the one that took over is then the only one.
        var stale = _ids.NewId();
        Assert.IsType<UploadStart.Started>(await Workloads.BeginUploadAsync(a, stale, _now, _now.AddSeconds(1), default));
        Assert.True(await Workloads.StageWorkloadCallsAsync(a, stale, [Call(a, stale)], _now.AddSeconds(1), default));
        var next = _ids.NewId();
        Assert.IsType<UploadStart.Started>(await Workloads.BeginUploadAsync(a, next, _now.AddSeconds(2), lease, default));
        Assert.False(await Workloads.StageWorkloadCallsAsync(a, stale, [Call(a, stale)], lease, default));
        Assert.IsType<UploadCommit.Lost>(await Workloads.CommitUploadAsync(a, stale, false, 10, default));
        Assert.Equal(new UploadCommit.Committed(0), await Workloads.CommitUploadAsync(a, next, true, 10, default)); // an empty replacement
        Assert.Equal(0, await CallsAsync(a));
        Assert.Equal(4, await Workloads.PurgeWorkloadAsync(a, 3, default));
        Assert.Equal(0, await Workloads.PurgeWorkloadAsync(a, 3, default));
    }

    private async Task<UploadCommit> ImportAsync(string userId, IReadOnlyList<WorkloadCall> calls, bool replace = false)
    {
        var batch = _ids.NewId();
        Assert.IsType<UploadStart.Started>(await Workloads.BeginUploadAsync(userId, batch, _now, _now.AddMinutes(1), default));
        try
        {
            Assert.True(await Workloads.StageWorkloadCallsAsync(userId, batch, [.. calls.Select(c => c with { BatchId = batch })], _now.AddMinutes(1), default));
        }
        catch
        {
            await Workloads.AbortUploadAsync(userId, batch, default);
            throw;
        }
        return await Workloads.CommitUploadAsync(userId, batch, replace, 1_000_000, default);
    }
}

public sealed class SqliteWorkloadStoreTests : WorkloadStoreTests<SqliteTestDatabase>;

public sealed class PostgresWorkloadStoreTests : WorkloadStoreTests<PostgresTestDatabaseForStores>;
