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
            new(_ids.NewId(), user, "batch", _now, "p", model, 100, 10, 250, "ok", cost, hash, "f", null);
        await Workloads.InsertWorkloadCallsAsync(a, [Call(a, "m1", 1.5, "h"), Call(a, "m1", 1.5, "h"), Call(a, "m2", 0.25)], false, default);
        await Workloads.InsertWorkloadCallsAsync(b, [Call(b, "secret-model", 100)], false, default);
        await Assert.ThrowsAsync<ArgumentException>(() => Workloads.InsertWorkloadCallsAsync(a, [Call(a, "m3", 1), Call(b, "m3", 1)], false, default));

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

        await Workloads.InsertWorkloadCallsAsync(a, [Call(a, "m9", 2)], true, default);
        Assert.Equal(["m9"], (await Workloads.GetWorkloadSummaryAsync(a, WorkloadFilter.None, default)).Models);
        Assert.Equal(["secret-model"], (await Workloads.GetWorkloadSummaryAsync(b, WorkloadFilter.None, default)).Models);
    }
}

public sealed class SqliteWorkloadStoreTests : WorkloadStoreTests<SqliteTestDatabase>;

public sealed class PostgresWorkloadStoreTests : WorkloadStoreTests<PostgresTestDatabaseForStores>;
