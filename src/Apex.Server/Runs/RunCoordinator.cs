using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Apex.Server.Hosting;
using Apex.Server.Storage;
using Apex.Server.Streaming;
using Microsoft.Extensions.Options;

namespace Apex.Server.Runs;

internal sealed record Submission(ThreadRecord Thread, RunRecord Run, MessageRecord Message, int Position);

/// <summary>An expected refusal, with the protocol's error code.</summary>
internal sealed record Refusal(string Code, string Message);

internal enum CancelOutcome { NotFound, Cancelled, Cancelling, AlreadyCancelled, AlreadyFinished }

/// <summary>
/// Accepts messages and cancellations from REST and <c>/ws</c> alike: one thread run at a time,
/// the thread's queue strategy for a busy thread, and cancellation that reaches the run wherever it is.
/// </summary>
internal sealed class RunCoordinator(IApexStore store, EventLog log, EventBus bus, RunWorker worker, RateLimits rateLimits, IdGenerator ids, TimeProvider time,
    IOptions<LimitsOptions> limits)
{
    public async Task<(Submission? Accepted, Refusal? Refused)> SubmitAsync(CurrentUser user, string? threadId, string? content, string? strategy,
        CancellationToken cancellationToken)
    {
        if (Check(content, strategy) is { } invalid) return (null, invalid);
        var text = content!.Trim();
        if (!rateLimits.TryAcquireMessage(user)) return Refuse("rate_limited", $"At most {limits.Value.MessagesPerMinutePerUser} messages a minute; wait a little.");

        var now = time.GetUtcNow();
        ThreadRecord? thread;
        if (threadId is null)
        {
            thread = await CreateThreadAsync(user, text, cancellationToken);
        }
        else if ((thread = await store.GetThreadAsync(user.Id, threadId, cancellationToken)) is null)
        {
            return Refuse("not_found", "No such thread.");
        }

        var message = new MessageRecord(ids.NewId(), thread.Id, user.Id, null, "user", text, now);
        var run = new RunRecord(ids.NewId(), thread.Id, user.Id, RunStatus.Queued, strategy ?? thread.Strategy, message.Id, now, null, null, null, null, false);
        message = message with { RunId = run.Id };
        var result = await store.SubmitRunAsync(message, run, position => new RunQueued(new RunQueuedData(message.Id, run.Strategy, position))
            { EventId = ids.NewId(), ThreadId = thread.Id, RunId = run.Id, UserId = user.Id, Timestamp = now }, limits.Value.MaxPendingRunsPerThread, cancellationToken);
        switch (result.Outcome)
        {
            case SubmitOutcome.ThreadBusy:
                return Refuse("thread_busy", $"The thread has {result.ActiveRunIds.Count} active or queued run(s) and its strategy is reject.");
            case SubmitOutcome.QueueFull:
                return Refuse("queue_full", $"The thread already has {limits.Value.MaxPendingRunsPerThread} queued runs.");
        }

        if (result.Queued is { } queued) bus.Publish(queued);
        if (run.Strategy == QueueStrategies.Interrupt)
        {
            foreach (var activeId in result.ActiveRunIds) await CancelAsync(user, activeId, CancelReasons.Interrupted, cancellationToken);
        }
        worker.Wake();
        return (new Submission(thread, run, message, result.Position), null);
    }

    public async Task<(CancelOutcome Outcome, RunRecord? Run)> CancelAsync(CurrentUser user, string runId, string reason, CancellationToken cancellationToken)
    {
        var run = await store.GetRunAsync(user.Id, runId, cancellationToken);
        if (run is null) return (CancelOutcome.NotFound, null);
        if (run.Status == RunStatus.Cancelled) return (CancelOutcome.AlreadyCancelled, run);
        if (RunStatus.IsFinished(run.Status)) return (CancelOutcome.AlreadyFinished, run);

        if (run.Status == RunStatus.Queued)
        {
            // Conditional on the run still being queued: if a worker claimed it meanwhile, it is cancelled as a running run below.
            var cancelled = await log.AppendAsync(new RunCancelled(new RunCancelledData(reason)) { ThreadId = run.ThreadId, RunId = run.Id, UserId = run.UserId },
                RunStatus.Queued, cancellationToken);
            if (cancelled is not null)
            {
                worker.Wake();
                return (CancelOutcome.Cancelled, run with { Status = RunStatus.Cancelled });
            }
            run = await store.GetRunAsync(user.Id, runId, cancellationToken);
            if (run is null) return (CancelOutcome.NotFound, null);
            if (RunStatus.IsFinished(run.Status)) return (run.Status == RunStatus.Cancelled ? CancelOutcome.AlreadyCancelled : CancelOutcome.AlreadyFinished, run);
        }

        await store.RequestCancelAsync(user.Id, run.Id, reason, cancellationToken);
        worker.TryCancelLocal(run.Id, reason);
        return (CancelOutcome.Cancelling, run);
    }

    /// <summary>Checks a message before anything is created for it.</summary>
    public Refusal? Check(string? content, string? strategy)
    {
        var length = content?.Trim().Length ?? 0;
        if (length == 0) return new Refusal("invalid_payload", "The message content is empty.");
        if (length > limits.Value.MaxMessageChars) return new Refusal("invalid_payload", $"The message is longer than {limits.Value.MaxMessageChars} characters.");
        if (strategy is not null && !QueueStrategies.IsValid(strategy)) return new Refusal("invalid_payload", "strategy must be enqueue, reject or interrupt.");
        return null;
    }

    /// <summary>A new thread for a first message, titled after it.</summary>
    public async Task<ThreadRecord> CreateThreadAsync(CurrentUser user, string firstMessage, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var thread = new ThreadRecord(ids.NewId(), user.Id, TitleFrom(firstMessage.Trim()), QueueStrategies.Enqueue, 0, now, now);
        await store.CreateThreadAsync(thread, cancellationToken);
        return thread;
    }

    private static (Submission?, Refusal?) Refuse(string code, string message) => (null, new Refusal(code, message));

    private static string TitleFrom(string text)
    {
        var line = text.Split('\n', 2)[0].Trim();
        return line.Length <= 60 ? line : line[..57] + "...";
    }
}
