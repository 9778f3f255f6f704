using System.Text.Json;
using Apex.Client;
using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>Tool approvals and the runs that wait for them: parking, answers, expiry, cancellation, owner scoping; the same tests on SQLite and PostgreSQL.</summary>
public abstract class ApprovalStoreTests<TDatabase> : StoreTests<TDatabase> where TDatabase : ITestDatabase, new()
{
    private IApprovalStore Approvals => new SqlApprovalStore(Database, new NodeIdentity());

    private async Task<RunRecord> RunningAsync(string user, string thread, string node = "n1")
    {
        var run = await SubmitAsync(user, thread);
        var claimed = await Runs.ClaimNextRunAsync(node, 10, _now, _now.AddSeconds(15), default);
        Assert.Equal(run.Id, claimed!.Id);
        Assert.Null(claimed.Checkpoint);
        return claimed;
    }

    private ApprovalRecord Approval(RunRecord run, string callId, TimeSpan? lifetime = null) =>
        new(run.Id, callId, run.UserId, run.ThreadId, "gated", "cost_breakdown", """{"group_by":"model"}""", ApprovalStatus.Pending, null, null, null, _now,
            _now + (lifetime ?? TimeSpan.FromHours(1)), null);

    private static ApprovalRequested Requested(RunRecord run, string callId, DateTimeOffset expires) =>
        new(new ApprovalRequestedData(callId, "cost_breakdown", JsonDocument.Parse("""{"group_by":"model"}""").RootElement.Clone(), [run.UserId], expires))
        { EventId = Guid.CreateVersion7().ToString(), ThreadId = run.ThreadId, RunId = run.Id, UserId = run.UserId, AgentName = "gated", Timestamp = DateTimeOffset.UtcNow };

    [Fact]
    public async Task AParkedRunWaitsWithoutALeaseBlocksItsThreadAndAnAnswerQueuesItWithItsCheckpoint()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var run = await RunningAsync(user, thread);
        var approval = Approval(run, "call_1");

        // Only the node that holds the run parks it.
        Assert.Null(await Approvals.ParkAsync(approval, "another-node", "{}", Requested(run, "call_1", approval.ExpiresAt), default));
        var parked = await Approvals.ParkAsync(approval, "n1", """{"checkpoint":1}""", Requested(run, "call_1", approval.ExpiresAt), default);
        Assert.Equal(RunStatus.Waiting, parked!.Status);
        Assert.True(parked.Requested.Seq > 0);
        // The request is stored with the run and reads back as it was sent, byte for byte.
        var read = Assert.Single((await Events.ReadRunEventsAsync(user, run.Id, default)).OfType<ApprovalRequested>());
        Assert.Equal(JsonSerializer.Serialize<ApexEvent>(parked.Requested, ApexJsonContext.Default.ApexEvent), JsonSerializer.Serialize<ApexEvent>(read, ApexJsonContext.Default.ApexEvent));
        Assert.Equal(RunStatus.Waiting, (await Runs.GetRunAsync(user, run.Id, default))!.Status);

        // Waiting is not running: no lease to renew, nothing for recovery, and the thread's next run waits behind it.
        Assert.Empty(await Runs.RenewLeasesAsync("n1", [run.Id], _now.AddSeconds(30), default));
        Assert.DoesNotContain(await Runs.FindOrphanedRunsAsync(_now.AddHours(1), all: true, default), r => r.Id == run.Id);
        var next = await SubmitAsync(user, thread);
        Assert.Null(await Runs.ClaimNextRunAsync("n2", 10, _now, _now.AddSeconds(15), default));
        Assert.Contains(await Runs.ListActiveRunsAsync(user, thread, default), r => r.Id == run.Id && r.Status == RunStatus.Waiting);

        // Another user: as if there were no such approval.
        var other = await UserAsync();
        Assert.IsType<ApprovalDecision.NotFound>(await Approvals.DecideAsync(other, run.Id, "call_1", true, null, null, other, _now, default));
        Assert.Null(await Approvals.GetAsync(other, run.Id, "call_1", default));
        Assert.Empty(await Approvals.ListAsync(other, run.Id, default));
        Assert.False(await Approvals.CancelParkedAsync(other, run.Id, "x", _now, default));

        var decided = Assert.IsType<ApprovalDecision.Decided>(await Approvals.DecideAsync(user, run.Id, "call_1", true, """{"group_by":"day"}""", null, user, _now, default));
        Assert.Equal((ApprovalStatus.Approved, """{"group_by":"day"}""", user), (decided.Approval.Status, decided.Approval.EditedArguments, decided.Approval.DecidedBy));
        Assert.IsType<ApprovalDecision.AlreadyDecided>(await Approvals.DecideAsync(user, run.Id, "call_1", false, null, "late", user, _now, default));
        // Queued again ahead of the thread's next run, and claimed with its checkpoint (its first start kept).
        var resumed = await Runs.ClaimNextRunAsync("n2", 10, _now.AddMinutes(5), _now.AddMinutes(6), default);
        Assert.Equal((run.Id, """{"checkpoint":1}""", run.StartedAt), (resumed!.Id, resumed.Checkpoint, resumed.StartedAt));
        Assert.Null(await Runs.ClaimNextRunAsync("n2", 10, _now, _now.AddSeconds(15), default));
        Assert.NotEqual(next.Id, resumed.Id);

        // Once it ends, its checkpoint (the conversation it waited with) is not kept.
        await Events.AppendEventsAsync([new EventAppend(new RunCompleted(new RunCompletedData("m", 1)) { EventId = Guid.NewGuid().ToString(), ThreadId = run.ThreadId,
            RunId = run.Id, UserId = user, Timestamp = _now })], default);
        await using var connection = await Database.OpenAsync(default);
        Assert.Equal([("completed", true)], await connection.QueryAsync("SELECT status, checkpoint FROM runs WHERE id = @id", null,
            r => (r.GetString(0), r.IsDBNull(1)), default, ("@id", run.Id)));
    }

    [Fact]
    public async Task AnUnansweredApprovalExpiresAndCancellingAParkedRunQueuesItWithItsCancellation()
    {
        var user = await UserAsync();
        var expiring = await RunningAsync(user, await ThreadAsync(user));
        var cancelled = await RunningAsync(user, await ThreadAsync(user));
        Assert.Equal(RunStatus.Waiting, (await Approvals.ParkAsync(Approval(expiring, "c1", TimeSpan.FromSeconds(1)), "n1", "{}", Requested(expiring, "c1", _now), default))!.Status);
        Assert.Equal(RunStatus.Waiting, (await Approvals.ParkAsync(Approval(cancelled, "c2"), "n1", "{}", Requested(cancelled, "c2", _now), default))!.Status);

        Assert.Equal(0, await Approvals.ExpireAsync(_now, default));
        Assert.Equal(1, await Approvals.ExpireAsync(_now.AddSeconds(2), default));
        Assert.Equal(ApprovalStatus.Expired, (await Approvals.GetAsync(user, expiring.Id, "c1", default))!.Status);
        Assert.Equal(RunStatus.Queued, (await Runs.GetRunAsync(user, expiring.Id, default))!.Status);

        Assert.True(await Approvals.CancelParkedAsync(user, cancelled.Id, "cancelled_by_user", _now, default));
        var approval = (await Approvals.GetAsync(user, cancelled.Id, "c2", default))!;
        Assert.Equal((ApprovalStatus.Cancelled, "cancelled_by_user"), (approval.Status, approval.Reason));
        var run = (await Runs.GetRunAsync(user, cancelled.Id, default))!;
        Assert.Equal((RunStatus.Queued, true), (run.Status, run.CancelRequested));
        // A run that never ran has no checkpoint: it is not a parked one.
        var fresh = await SubmitAsync(user, await ThreadAsync(user));
        Assert.False(await Approvals.CancelParkedAsync(user, fresh.Id, "cancelled_by_user", _now, default));
    }

    [Fact]
    public async Task ARunWhoseCancellationWasRequestedBeforeItParkedIsQueuedToEndWithItsApprovalCancelled()
    {
        var user = await UserAsync();
        var run = await RunningAsync(user, await ThreadAsync(user));
        Assert.True(await Runs.RequestCancelAsync(user, run.Id, "cancelled_by_user", default));
        var parked = await Approvals.ParkAsync(Approval(run, "c1"), "n1", "{}", Requested(run, "c1", _now), default);
        Assert.Equal(RunStatus.Queued, parked!.Status);
        Assert.Equal(ApprovalStatus.Cancelled, (await Approvals.GetAsync(user, run.Id, "c1", default))!.Status);
        Assert.IsType<ApprovalDecision.AlreadyDecided>(await Approvals.DecideAsync(user, run.Id, "c1", true, null, null, user, _now, default));
    }
}

public sealed class SqliteApprovalStoreTests : ApprovalStoreTests<SqliteTestDatabase>;

public sealed class PostgresApprovalStoreTests : ApprovalStoreTests<PostgresTestDatabaseForStores>;
