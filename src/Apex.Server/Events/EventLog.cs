using System.Threading.Channels;
using Apex.Client;
using Apex.Server.Storage;

namespace Apex.Server.Events;

/// <summary>
/// How events enter the system: each is stored (seq assigned in the same transaction) and only
/// then published. Appends from all runs are batched into one transaction per turn of the loop,
/// which is what lets SQLite keep up with many concurrent runs. (A run's first event, run_queued,
/// is stored by the store together with the run itself, then published the same way.)
/// </summary>
internal sealed partial class EventLog(IEventStore store, EventBus bus, IdGenerator ids, TimeProvider time, ApexTelemetry telemetry, ILogger<EventLog> logger) : BackgroundService
{
    private const int MaxBatch = 512;
    private readonly Channel<PendingAppend> _queue = Channel.CreateUnbounded<PendingAppend>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>Stores the event and returns it with its <c>seq</c>; null when its thread no longer exists.</summary>
    public async Task<ApexEvent?> AppendAsync(ApexEvent evt, CancellationToken cancellationToken) => await AppendAsync(evt, null, cancellationToken);

    /// <summary>Stores a terminal event only if the run is still in <paramref name="expectedRunStatus"/>; null when it was not.</summary>
    public async Task<ApexEvent?> AppendAsync(ApexEvent evt, string? expectedRunStatus, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(evt.ThreadId);
        ArgumentNullException.ThrowIfNull(evt.UserId);
        var pending = new PendingAppend(new EventAppend(evt with { EventId = evt.EventId ?? ids.NewId(), Timestamp = evt.Timestamp == default ? time.GetUtcNow() : evt.Timestamp }, expectedRunStatus));
        if (!_queue.Writer.TryWrite(pending)) throw new InvalidOperationException("The event log is shut down.");
        // The append itself is not abandoned on cancellation (it may already be committed); only the wait is.
        return await pending.Completion.Task.WaitAsync(cancellationToken);
    }

    /// <summary>An event a store appends inside its own transaction (with a change it must commit together with): its id and time.</summary>
    public ApexEvent Prepare(ApexEvent evt) => evt with { EventId = evt.EventId ?? ids.NewId(), Timestamp = evt.Timestamp == default ? time.GetUtcNow() : evt.Timestamp };

    /// <summary>Publishes an event that a store appended itself (see <see cref="Prepare"/>), once it is committed.</summary>
    public void Published(ApexEvent stored)
    {
        Count([stored]);
        bus.Publish(stored);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<PendingAppend>(MaxBatch);
        // Drain on shutdown: runs still write their terminal events while the host stops.
        while (await _queue.Reader.WaitToReadAsync(CancellationToken.None))
        {
            batch.Clear();
            while (batch.Count < MaxBatch && _queue.Reader.TryRead(out var item)) batch.Add(item);
            await StoreAsync(batch, split: false);
        }
    }

    /// <summary>What the stored events say, counted once each: events, tool calls, ended runs and their tokens.</summary>
    private void Count(IReadOnlyList<ApexEvent> stored)
    {
        telemetry.EventsStored(stored.Count);
        foreach (var evt in stored)
        {
            switch (evt)
            {
                case ToolCompleted tool:
                    telemetry.ToolCalled(tool.Data.Tool, tool.Data.Status);
                    break;
                case RunCompleted { Data.Usage: { } usage }:
                    foreach (var model in usage.Models) telemetry.TokensUsed(model.Model, model.InputTokens, model.OutputTokens);
                    telemetry.RunEnded(evt.Type);
                    break;
                case { IsTerminal: true }:
                    telemetry.RunEnded(evt.Type);
                    break;
            }
        }
    }

    /// <summary>
    /// Stores a batch in one transaction (the store retries deadlocks itself); a batch that still fails is split in halves
    /// and each half stored on its own, so that one append that cannot be stored fails only itself, not the others with it.
    /// </summary>
    private async Task StoreAsync(List<PendingAppend> batch, bool split)
    {
        try
        {
            var stored = await store.AppendEventsAsync(batch.ConvertAll(p => p.Append), CancellationToken.None);
            telemetry.BatchStored(batch.Count);
            var byId = stored.ToDictionary(e => e.EventId!);
            Count(stored);
            foreach (var pending in batch)
            {
                var result = byId.GetValueOrDefault(pending.Append.Event.EventId!);
                if (result is not null) bus.Publish(result);
                pending.Completion.TrySetResult(result);
            }
        }
        catch (Exception ex) when (batch.Count > 1)
        {
            if (!split) LogBatchSplit(logger, ex, batch.Count);
            // Halves in order: a thread's events keep their order across the split.
            var half = batch.Count / 2;
            await StoreAsync(batch[..half], split: true);
            await StoreAsync(batch[half..], split: true);
        }
        catch (Exception ex)
        {
            LogAppendFailed(logger, ex, batch[0].Append.Event.Type, batch[0].Append.Event.RunId);
            batch[0].Completion.TrySetException(ex);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _queue.Writer.TryComplete();
        await base.StopAsync(cancellationToken);
    }

    private sealed record PendingAppend(EventAppend Append)
    {
        public TaskCompletionSource<ApexEvent?> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Appending a batch of {Count} events failed; storing it in halves")]
    private static partial void LogBatchSplit(ILogger logger, Exception exception, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Appending a {Type} event of run {RunId} failed")]
    private static partial void LogAppendFailed(ILogger logger, Exception exception, string type, string? runId);
}
