using System.Text.Json;
using Apex.Client;
using Apex.Server.Agents;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Runs;

/// <summary>What became of a message: accepted (its thread, run and queue position) or refused with the protocol's error code.</summary>
internal abstract record Submission
{
    private Submission() { }

    public sealed record Accepted(ThreadRecord Thread, RunRecord Run, MessageRecord Message, int Position) : Submission;

    public sealed record Refused(string Code, string Message) : Submission;
}

/// <summary>What became of an answer to an approval request.</summary>
internal abstract record ApprovalAnswer
{
    private ApprovalAnswer() { }

    public sealed record Stored(ApprovalRecord Approval) : ApprovalAnswer;

    /// <summary>Refused: <c>not_found</c>, <c>already_decided</c> or <c>invalid_payload</c>.</summary>
    public sealed record Refused(string Code, string Message) : ApprovalAnswer;
}

/// <summary>What became of a cancellation request.</summary>
internal abstract record CancelResult
{
    private CancelResult() { }

    public sealed record NotFound : CancelResult;

    /// <summary>A queued run, ended at once.</summary>
    public sealed record Cancelled(RunRecord Run) : CancelResult;

    /// <summary>A running run, told to stop wherever it executes; its <c>run_cancelled</c> follows.</summary>
    public sealed record Cancelling(RunRecord Run) : CancelResult;

    public sealed record AlreadyCancelled(RunRecord Run) : CancelResult;

    public sealed record AlreadyFinished(RunRecord Run) : CancelResult;
}

/// <summary>
/// The one owner of the message path, for every door (REST, <c>/ws</c>): it checks the message and the user's rate
/// limit before anything is created, creates or loads the thread, queues the run with the thread's strategy for a
/// busy thread, and cancels runs wherever they are.
/// </summary>
internal sealed class RunCoordinator(IThreadStore threads, IRunStore runs, IAgentStore agents, IApprovalStore approvals, AgentCatalog catalog, EventLog log, EventBus bus, RunWorker worker,
    MessageRateLimiter rateLimiter, IdGenerator ids, TimeProvider time, IOptions<LimitsOptions> limits)
{
    /// <summary>
    /// Submits a message to a thread (null: a new thread titled after the message). <paramref name="beforeQueue"/> is called
    /// with the thread before the run is queued: a socket follows the thread there, so it sees <c>run_queued</c>.
    /// <paramref name="agent"/> names the agent or team that answers (its id or name; null or the shipped team's name: the shipped
    /// team); the run records its current version.
    /// </summary>
    public async Task<Submission> SubmitAsync(string userId, string? threadId, string? content, string? strategy, string? agent,
        Func<ThreadRecord, CancellationToken, ValueTask>? beforeQueue, CancellationToken cancellationToken)
    {
        var options = limits.Value;
        var text = content?.Trim() ?? "";
        if (text.Length == 0) return new Submission.Refused("invalid_payload", "The message content is empty.");
        if (text.Length > options.MaxMessageChars) return new Submission.Refused("invalid_payload", $"The message is longer than {options.MaxMessageChars} characters.");
        if (strategy is not null && !QueueStrategies.IsValid(strategy)) return new Submission.Refused("invalid_payload", "strategy must be enqueue, reject or interrupt.");
        if (!await rateLimiter.TryAcquireAsync(userId, cancellationToken)) return new Submission.Refused("rate_limited", $"At most {options.MessagesPerMinutePerUser} messages a minute; wait a little.");

        AgentRecord? named = null;
        if (agent is { Length: > 0 } && agent != catalog.Shipped.Name)
        {
            // Another user's private agent is one that does not exist.
            named = await agents.FindAsync(userId, agent, cancellationToken);
            if (named is null) return new Submission.Refused("not_found", $"No agent or team is named '{agent}'.");
        }

        var now = time.GetUtcNow();
        ThreadRecord thread;
        if (threadId is null)
        {
            thread = new ThreadRecord(ids.NewId(), userId, TitleFrom(text), QueueStrategies.Enqueue, 0, now, now);
            if (!await threads.CreateThreadAsync(thread, options.MaxThreadsPerUser, cancellationToken))
                return new Submission.Refused("thread_limit", $"At most {options.MaxThreadsPerUser} threads per user; delete one first.");
        }
        else if (await threads.GetThreadAsync(userId, threadId, cancellationToken) is { } existing)
        {
            thread = existing;
        }
        else
        {
            return new Submission.Refused("not_found", "No such thread.");
        }
        if (beforeQueue is not null) await beforeQueue(thread, cancellationToken);

        var message = new MessageRecord(ids.NewId(), thread.Id, userId, null, "user", text, now);
        var run = new RunRecord(ids.NewId(), thread.Id, userId, RunStatus.Queued, strategy ?? thread.Strategy, message.Id, now, null, null, null, null, false,
            AgentId: named?.Id, AgentVersion: named?.Version);
        message = message with { RunId = run.Id };
        var result = await runs.SubmitRunAsync(message, run, position => new RunQueued(new RunQueuedData(message.Id, run.Strategy, position))
            { EventId = ids.NewId(), ThreadId = thread.Id, RunId = run.Id, UserId = userId, Timestamp = now }, options.MaxPendingRunsPerThread, cancellationToken);
        switch (result.Outcome)
        {
            case SubmitOutcome.ThreadBusy:
                return new Submission.Refused("thread_busy", $"The thread has {result.ActiveRunIds.Count} active or queued run(s) and its strategy is reject.");
            case SubmitOutcome.QueueFull:
                return new Submission.Refused("queue_full", $"The thread already has {options.MaxPendingRunsPerThread} queued runs.");
        }

        if (result.Queued is { } queued) bus.Publish(queued);
        if (run.Strategy == QueueStrategies.Interrupt)
        {
            foreach (var activeId in result.ActiveRunIds) await CancelAsync(userId, activeId, CancelReasons.Interrupted, cancellationToken);
        }
        worker.Wake();
        return new Submission.Accepted(thread, run, message, result.Position);
    }

    public async Task<CancelResult> CancelAsync(string userId, string runId, string reason, CancellationToken cancellationToken)
    {
        var run = await runs.GetRunAsync(userId, runId, cancellationToken);
        if (run is null) return new CancelResult.NotFound();
        if (run.Status == RunStatus.Cancelled) return new CancelResult.AlreadyCancelled(run);
        if (RunStatus.IsFinished(run.Status)) return new CancelResult.AlreadyFinished(run);

        // A run parked with a checkpoint (waiting for an approval, or queued to resume) is ended by the worker that resumes it, so
        // that the agents it had opened are closed before its run_cancelled.
        if (run.Status is RunStatus.Waiting or RunStatus.Queued && await approvals.CancelParkedAsync(userId, run.Id, reason, time.GetUtcNow(), cancellationToken))
        {
            worker.Wake();
            return new CancelResult.Cancelling(run);
        }

        if (run.Status == RunStatus.Queued)
        {
            // Conditional on the run still being queued: if a worker claimed it meanwhile, it is cancelled as a running run below.
            var cancelled = await log.AppendAsync(new RunCancelled(new RunCancelledData(reason)) { ThreadId = run.ThreadId, RunId = run.Id, UserId = run.UserId },
                RunStatus.Queued, cancellationToken);
            if (cancelled is not null)
            {
                worker.Wake();
                return new CancelResult.Cancelled(run with { Status = RunStatus.Cancelled });
            }
            run = await runs.GetRunAsync(userId, runId, cancellationToken);
            if (run is null) return new CancelResult.NotFound();
            if (RunStatus.IsFinished(run.Status)) return run.Status == RunStatus.Cancelled ? new CancelResult.AlreadyCancelled(run) : new CancelResult.AlreadyFinished(run);
        }

        await runs.RequestCancelAsync(userId, run.Id, reason, cancellationToken);
        worker.TryCancelLocal(run.Id, reason);
        return new CancelResult.Cancelling(run);
    }

    /// <summary>
    /// A person's answer to a tool call that waits: stored with who gave it, and the run queued again for a worker to resume. Edited
    /// arguments (approve only) must be a JSON object; the run's own tool checks them against the tool's schema when it runs.
    /// </summary>
    public async Task<ApprovalAnswer> DecideAsync(string userId, string runId, string callId, bool approve, JsonElement? arguments, string? reason,
        CancellationToken cancellationToken)
    {
        if (arguments is { ValueKind: not (JsonValueKind.Object or JsonValueKind.Null or JsonValueKind.Undefined) })
            return new ApprovalAnswer.Refused("invalid_payload", "'arguments' is a JSON object of the tool's arguments.");
        if (!approve && arguments is { ValueKind: JsonValueKind.Object }) return new ApprovalAnswer.Refused("invalid_payload", "'arguments' are edited on approval only.");
        if (reason is { Length: > MaxReasonChars }) return new ApprovalAnswer.Refused("invalid_payload", $"'reason' is at most {MaxReasonChars} characters.");
        var edited = arguments is { ValueKind: JsonValueKind.Object } a ? a.GetRawText() : null;
        var decision = await approvals.DecideAsync(userId, runId, callId, approve, edited, string.IsNullOrWhiteSpace(reason) ? null : reason.Trim(), userId, time.GetUtcNow(), cancellationToken);
        if (decision is ApprovalDecision.Decided) worker.Wake();
        return decision switch
        {
            ApprovalDecision.Decided d => new ApprovalAnswer.Stored(d.Approval),
            ApprovalDecision.AlreadyDecided d => new ApprovalAnswer.Refused("already_decided", $"The call was already {d.Approval.Status}."),
            _ => new ApprovalAnswer.Refused("not_found", "No such tool call waits for approval in this run."),
        };
    }

    private const int MaxReasonChars = 1000;

    /// <summary>
    /// Deletes a thread. Its queued runs are cancelled and its running ones told to stop (reason <c>thread_deleted</c>)
    /// first, and the deletion waits a little for them to end, so followers see their <c>run_cancelled</c> and no run
    /// goes on working for a thread that is gone. False when there is no such thread of this user.
    /// </summary>
    public async Task<bool> DeleteThreadAsync(string userId, string threadId, CancellationToken cancellationToken)
    {
        if (await threads.GetThreadAsync(userId, threadId, cancellationToken) is null) return false;
        using var subscription = bus.Subscribe(threadId);
        var stopping = new List<string>();
        foreach (var run in await runs.ListActiveRunsAsync(userId, threadId, cancellationToken))
            if (await CancelAsync(userId, run.Id, CancelReasons.ThreadDeleted, cancellationToken) is CancelResult.Cancelling) stopping.Add(run.Id);
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        patience.CancelAfter(DeleteWait);
        try
        {
            while (stopping.Count > 0)
            {
                foreach (var id in stopping.ToList())
                    if (await runs.GetRunAsync(userId, id, cancellationToken) is not { } r || RunStatus.IsFinished(r.Status)) stopping.Remove(id);
                if (stopping.Count > 0) await subscription.Channel.Reader.ReadAsync(patience.Token);
            }
        }
        catch (OperationCanceledException) when (patience.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            // A run that does not stop in time loses its thread anyway: its later events have nowhere to go and are dropped.
        }
        return await threads.DeleteThreadAsync(userId, threadId, cancellationToken);
    }

    /// <summary>How long deleting a thread waits for its running runs to end.</summary>
    private static readonly TimeSpan DeleteWait = TimeSpan.FromSeconds(5);

    private static string TitleFrom(string text)
    {
        var line = text.Split('\n', 2)[0].Trim();
        return line.Length <= 60 ? line : line[..57] + "...";
    }
}
