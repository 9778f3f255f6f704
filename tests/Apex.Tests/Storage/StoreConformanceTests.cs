using Apex.Client;
using Apex.Server.Execution;
using Apex.Server.Hosting;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Storage;

/// <summary>One store contract, the same tests against each real database.</summary>
public abstract class StoreConformanceTests : IAsyncLifetime
{
    private Database _database = null!;
    private readonly IdGenerator _ids = new(TimeProvider.System);
    private readonly DateTimeOffset _now = DateTimeOffset.UtcNow;

    private protected IApexStore Store { get; private set; } = null!;

    private protected abstract Task<Database> CreateDatabaseAsync();

    protected abstract Task DropDatabaseAsync();

    public async Task InitializeAsync()
    {
        _database = await CreateDatabaseAsync();
        await Migrations.ApplyAsync(_database, TimeProvider.System, CancellationToken.None);
        Store = new SqlApexStore(_database, new NodeIdentity());
    }

    public async Task DisposeAsync()
    {
        await _database.DisposeAsync();
        await DropDatabaseAsync();
    }

    private async Task<string> UserAsync(string? email = null)
    {
        var id = _ids.NewId();
        email ??= $"{id}@example.com";
        Assert.True(await Store.CreateUserAsync(new UserRecord(id, email, email.ToUpperInvariant(), "hash", "name", "free", _now, 0, null), default));
        return id;
    }

    private async Task<string> ThreadAsync(string userId)
    {
        var id = _ids.NewId();
        await Store.CreateThreadAsync(new ThreadRecord(id, userId, "t", QueueStrategies.Enqueue, 0, _now, _now), default);
        return id;
    }

    private async Task<RunRecord> SubmitAsync(string userId, string threadId, string strategy = QueueStrategies.Enqueue)
    {
        var message = new MessageRecord(_ids.NewId(), threadId, userId, null, "user", "hello", _now);
        var run = new RunRecord(_ids.NewId(), threadId, userId, RunStatus.Queued, strategy, message.Id, _now, null, null, null, null, false);
        var result = await Store.SubmitRunAsync(message with { RunId = run.Id }, run, Queued(run, message.Id), 10, default);
        Assert.Equal(SubmitOutcome.Queued, result.Outcome);
        Assert.Equal(run.Id, result.Queued!.RunId);
        Assert.True(result.Queued.Seq > 0);
        return run;
    }

    private static Func<int, ApexEvent> Queued(RunRecord run, string messageId) => position =>
        new RunQueued(new RunQueuedData(messageId, run.Strategy, position)) { EventId = Guid.NewGuid().ToString(), ThreadId = run.ThreadId, RunId = run.Id, UserId = run.UserId, Timestamp = DateTimeOffset.UtcNow };

    private static ApexEvent Event(string userId, string threadId, string? runId = null) =>
        new AgentThinking(new AgentThinkingData("x")) { EventId = Guid.NewGuid().ToString(), ThreadId = threadId, RunId = runId, UserId = userId, Timestamp = DateTimeOffset.UtcNow };

    [Fact]
    public async Task SchemaIsCurrentAndMigratingAgainChangesNothing()
    {
        Assert.True(await Store.IsReadyAsync(default));
        Assert.Equal(0, await Migrations.ApplyAsync(_database, TimeProvider.System, default));
    }

    [Fact]
    public async Task EmailsAreUniqueAndFailedLoginsLockTheAccount()
    {
        var id = await UserAsync("Same@Example.com");
        Assert.False(await Store.CreateUserAsync(new UserRecord(_ids.NewId(), "same@example.com", "SAME@EXAMPLE.COM", "h", "n", "free", _now, 0, null), default));
        for (var i = 0; i < 3; i++) await Store.RecordLoginFailureAsync(id, 3, _now.AddMinutes(5), default);
        var locked = await Store.FindUserByEmailAsync("SAME@EXAMPLE.COM", default);
        Assert.Equal(_now.AddMinutes(5).ToUnixTimeMilliseconds(), locked!.LockoutUntil!.Value.ToUnixTimeMilliseconds());
        await Store.ResetLoginFailuresAsync(id, default);
        Assert.Null((await Store.GetUserAsync(id, default))!.LockoutUntil);
    }

    [Fact]
    public async Task RefreshTokensRotateOnceAndSessionsRevoke()
    {
        var user = await UserAsync();
        var session = new SessionRecord(_ids.NewId(), user, "old", _now, _now.AddDays(1), null);
        await Store.CreateSessionAsync(session, default);
        Assert.NotNull(await Store.RotateRefreshTokenAsync("old", "new", _now.AddDays(2), _now, default));
        Assert.Null(await Store.RotateRefreshTokenAsync("old", "newer", _now.AddDays(2), _now, default));
        Assert.Null(await Store.GetSessionAsync(await UserAsync(), session.Id, default));
        Assert.True(await Store.RevokeSessionAsync(user, session.Id, _now, default));
        Assert.NotNull((await Store.GetSessionAsync(user, session.Id, default))!.RevokedAt);
        Assert.Null(await Store.RotateRefreshTokenAsync("new", "x", _now.AddDays(2), _now, default));
    }

    [Fact]
    public async Task TicketsAreSingleUseAndExpire()
    {
        var user = await UserAsync();
        await Store.CreateTicketAsync("t1", user, "s", _now.AddSeconds(30), default);
        Assert.Equal((user, "s"), await Store.ConsumeTicketAsync("t1", _now, default));
        Assert.Null(await Store.ConsumeTicketAsync("t1", _now, default));
        await Store.CreateTicketAsync("t2", user, "s", _now.AddSeconds(30), default);
        Assert.Null(await Store.ConsumeTicketAsync("t2", _now.AddMinutes(1), default));
    }

    [Fact]
    public async Task ThreadsMessagesRunsAndEventsAreScopedByOwner()
    {
        var owner = await UserAsync();
        var other = await UserAsync();
        var thread = await ThreadAsync(owner);
        var run = await SubmitAsync(owner, thread);
        await Store.AppendEventsAsync([new EventAppend(Event(owner, thread, run.Id))], default);

        Assert.NotNull(await Store.GetThreadAsync(owner, thread, default));
        Assert.Null(await Store.GetThreadAsync(other, thread, default));
        Assert.Empty(await Store.ListThreadsAsync(other, 10, null, default));
        Assert.Null(await Store.UpdateThreadAsync(other, thread, "stolen", null, _now, default));
        Assert.False(await Store.DeleteThreadAsync(other, thread, default));
        Assert.Empty(await Store.ListMessagesAsync(other, thread, 10, null, default));
        Assert.Null(await Store.GetRunAsync(other, run.Id, default));
        Assert.Empty(await Store.ListRunsAsync(other, thread, 10, null, default));
        Assert.Empty(await Store.ReadEventsAsync(other, thread, 0, 10, default));
        Assert.False(await Store.RequestCancelAsync(other, run.Id, "x", default));
        Assert.Equal(["run_queued", "agent_thinking"], (await Store.ReadEventsAsync(owner, thread, 0, 10, default)).Select(e => e.Type));
        Assert.Single(await Store.ListMessagesAsync(owner, thread, 10, null, default));
        Assert.True(await Store.DeleteThreadAsync(owner, thread, default));
        Assert.Null(await Store.GetRunAsync(owner, run.Id, default));
    }

    [Fact]
    public async Task SeqIsGaplessAndUniqueUnderConcurrentAppends()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var other = await ThreadAsync(user);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 25; i++)
                await Store.AppendEventsAsync([new EventAppend(Event(user, thread)), new EventAppend(Event(user, other)), new EventAppend(Event(user, thread))], default);
        })));
        var events = await Store.ReadEventsAsync(user, thread, 0, 1000, default);
        Assert.Equal(Enumerable.Range(1, 400).Select(i => (long)i), events.Select(e => e.Seq));
        Assert.Equal(400, events.Select(e => e.EventId).Distinct().Count());
        Assert.Equal(200, (await Store.ReadEventsAsync(user, other, 0, 1000, default)).Count);
        Assert.Equal(400, (await Store.GetThreadAsync(user, thread, default))!.LastSeq);
    }

    [Fact]
    public async Task ATerminalEventEndsItsRunExactlyOnceFromTheExpectedStatus()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var run = await SubmitAsync(user, thread);
        ApexEvent Terminal() => new RunCancelled(new RunCancelledData("test")) { EventId = Guid.NewGuid().ToString(), ThreadId = thread, RunId = run.Id, UserId = user, Timestamp = DateTimeOffset.UtcNow };

        Assert.Empty(await Store.AppendEventsAsync([new EventAppend(Terminal(), RunStatus.Running)], default));
        Assert.Single(await Store.AppendEventsAsync([new EventAppend(Terminal(), RunStatus.Queued)], default));
        Assert.Empty(await Store.AppendEventsAsync([new EventAppend(Terminal(), RunStatus.Queued)], default));
        var ended = await Store.GetRunAsync(user, run.Id, default);
        Assert.Equal(RunStatus.Cancelled, ended!.Status);
        Assert.Equal("test", ended.Error);
        Assert.Single(await Store.ReadEventsAsync(user, thread, 0, 10, default), e => e.IsTerminal);
    }

    [Fact]
    public async Task ClaimsRunOneRunPerThreadInOrderWithinTheUserLimit()
    {
        var user = await UserAsync();
        var threadA = await ThreadAsync(user);
        var threadB = await ThreadAsync(user);
        var a1 = await SubmitAsync(user, threadA);
        var a2 = await SubmitAsync(user, threadA);
        var b1 = await SubmitAsync(user, threadB);

        var first = await Store.ClaimNextRunAsync("n1", 1, _now, _now.AddSeconds(15), default);
        Assert.Equal(a1.Id, first!.Id);
        Assert.Null(await Store.ClaimNextRunAsync("n2", 1, _now, _now.AddSeconds(15), default)); // user limit 1
        Assert.Equal(b1.Id, (await Store.ClaimNextRunAsync("n2", 2, _now, _now.AddSeconds(15), default))!.Id);
        Assert.Null(await Store.ClaimNextRunAsync("n2", 5, _now, _now.AddSeconds(15), default)); // a2 waits behind a1

        var rejected = new RunRecord(_ids.NewId(), threadA, user, RunStatus.Queued, QueueStrategies.Reject, "m", _now, null, null, null, null, false);
        var busy = await Store.SubmitRunAsync(new MessageRecord(_ids.NewId(), threadA, user, null, "user", "x", _now), rejected, Queued(rejected, "m"), 10, default);
        Assert.Equal((SubmitOutcome.ThreadBusy, null), (busy.Outcome, busy.Queued));

        await Store.AppendEventsAsync([new EventAppend(new RunCompleted(new RunCompletedData("m", 1)) { EventId = Guid.NewGuid().ToString(), ThreadId = threadA, RunId = a1.Id, UserId = user, Timestamp = _now })], default);
        Assert.Equal(a2.Id, (await Store.ClaimNextRunAsync("n1", 5, _now, _now.AddSeconds(15), default))!.Id);
    }

    [Fact]
    public async Task LeasesRenewCancellationIsSeenAndExpiredRunsAreTakenOverOnce()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var run = await SubmitAsync(user, thread);
        await Store.ClaimNextRunAsync("n1", 5, _now, _now.AddSeconds(15), default);

        Assert.Empty(await Store.RenewLeasesAsync("n1", [run.Id], _now.AddSeconds(30), default));
        Assert.True(await Store.RequestCancelAsync(user, run.Id, "x", default));
        Assert.Equal([run.Id], await Store.RenewLeasesAsync("n1", [run.Id], _now.AddSeconds(30), default));
        Assert.Empty(await Store.RenewLeasesAsync("n2", [run.Id], _now.AddSeconds(30), default)); // not n2's run

        Assert.Empty(await Store.FindOrphanedRunsAsync(_now.AddSeconds(20), false, default));
        Assert.Single(await Store.FindOrphanedRunsAsync(_now.AddSeconds(31), false, default));
        Assert.False(await Store.TryTakeOverRunAsync(run.Id, "n2", _now.AddSeconds(20), _now.AddSeconds(35), false, default));
        Assert.True(await Store.TryTakeOverRunAsync(run.Id, "n2", _now.AddSeconds(31), _now.AddSeconds(46), false, default));
        Assert.False(await Store.TryTakeOverRunAsync(run.Id, "n3", _now.AddSeconds(31), _now.AddSeconds(46), false, default));
    }

    [Fact]
    public async Task WorkloadQueriesReadOnlyTheOwnersRowsAndAnImportIsAllOrNothing()
    {
        var a = await UserAsync();
        var b = await UserAsync();
        WorkloadCall Call(string user, string model, double cost, string? hash = null) =>
            new(_ids.NewId(), user, "batch", _now, "p", model, 100, 10, 250, "ok", cost, hash, "f", null);
        await Store.InsertWorkloadCallsAsync(a, [Call(a, "m1", 1.5, "h"), Call(a, "m1", 1.5, "h"), Call(a, "m2", 0.25)], false, default);
        await Store.InsertWorkloadCallsAsync(b, [Call(b, "secret-model", 100)], false, default);
        await Assert.ThrowsAsync<ArgumentException>(() => Store.InsertWorkloadCallsAsync(a, [Call(a, "m3", 1), Call(b, "m3", 1)], false, default));

        var summary = await Store.GetWorkloadSummaryAsync(a, default);
        Assert.Equal((3, 3.25), (summary.Calls, Math.Round(summary.Cost, 2)));
        Assert.Equal(["m1", "m2"], summary.Models);
        Assert.Equal(["m1", "m2"], (await Store.GetModelStatsAsync(a, default)).Select(m => m.Model));
        Assert.Equal(3.0, (await Store.GetCostBreakdownAsync(a, "model", default))[0].Cost, 6);
        Assert.Equal(3.25, Assert.Single(await Store.GetCostBreakdownAsync(a, "day", default)).Cost, 6);
        Assert.Equal(["m1", "m2"], (await Store.GetLatenciesByModelAsync(a, default)).Keys.Order());
        var repeated = Assert.Single(await Store.GetRepeatedPromptsAsync(a, default));
        Assert.Equal((2, 3.0, 1.5), (repeated.Calls, repeated.Cost, repeated.FirstCallCost));
        Assert.Equal(3.25, Assert.Single(await Store.GetHourlyCostAsync(a, default)).Cost, 6);

        await Store.InsertWorkloadCallsAsync(a, [Call(a, "m9", 2)], true, default);
        Assert.Equal(["m9"], (await Store.GetWorkloadSummaryAsync(a, default)).Models);
        Assert.Equal(["secret-model"], (await Store.GetWorkloadSummaryAsync(b, default)).Models);
    }
}

public sealed class SqliteStoreConformanceTests : StoreConformanceTests
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");

    private protected override Task<Database> CreateDatabaseAsync() => Task.FromResult<Database>(new SqliteDatabase(_path));

    protected override Task DropDatabaseAsync()
    {
        ApexTestServer.DeleteDatabase(_path);
        return Task.CompletedTask;
    }
}

public sealed class PostgresStoreConformanceTests : StoreConformanceTests
{
    private PostgresTestDatabase _database = null!;

    private protected override async Task<Database> CreateDatabaseAsync()
    {
        _database = await PostgresTestDatabase.CreateAsync();
        return new PostgresDatabase(_database.ConnectionString);
    }

    protected override async Task DropDatabaseAsync() => await _database.DisposeAsync();
}
