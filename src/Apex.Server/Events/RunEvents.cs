using System.Text.Json;
using Apex.Client;

namespace Apex.Server.Events;

/// <summary>
/// The run's event writer: stamps the envelope, appends to the event log (which publishes), and
/// remembers what is open, so that whatever way the run ends, every started agent and tool call
/// is closed before the one terminal event. When one of the run's own appends fails for good (the log already retried
/// and split its batch), the run ends at once, honestly, with <c>run_failed</c> reason <c>storage_error</c>, and
/// <paramref name="storageFailed"/> stops the run's work; nothing the run writes after that is stored.
/// </summary>
/// <remarks>
/// Answer pieces are coalesced over <paramref name="deltaWindow"/>: the first piece of an answer (or the first after a pause
/// as long as the window) is queued at once; pieces that follow within the window are joined and queued when it ends, or as
/// soon as any other event of the run comes, so the order of events never changes. A model streaming hundreds of tokens then
/// costs a few rows and frames a second, not one per token. The window grows with the answer: it is a tenth of how long the
/// answer has been streaming when that is longer, up to ten windows (<see cref="WindowGrowth"/>), so a long answer stays at a
/// few dozen rows (about 10 in its first second, then about 10 more each time its length multiplies by e) while its text
/// still arrives at least once a second with the default window. <see cref="TimeSpan.Zero"/> queues every piece as it comes.
/// </remarks>
internal sealed class RunEvents(string userId, string threadId, string runId, EventLog log, Action? storageFailed = null, TimeSpan deltaWindow = default,
    TimeProvider? time = null)
{
    public const string StorageError = "storage_error";

    /// <summary>The delta window is at least a 1/WindowGrowth of the answer's age and at most WindowGrowth windows.</summary>
    public const int WindowGrowth = 10;

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private (string Agent, string MessageId, System.Text.StringBuilder Text)? _pendingDelta;
    private string? _lastDeltaMessage;
    private long _lastDeltaQueued;
    private long _answerStarted;
    private ITimer? _deltaTimer;

    private readonly Lock _gate = new();
    private readonly List<(string CallId, string Tool, string Agent, long StartedTicks)> _openTools = [];
    private readonly List<(string Agent, long StartedTicks)> _openAgents = [];
    private readonly List<(Task Append, Action? Reopen)> _inFlight = [];
    private bool _terminated;
    private Task _termination = Task.CompletedTask;

    public bool Terminated { get { lock (_gate) return _terminated; } }

    public Task RunStartedAsync(string nodeId) => AppendAsync(new RunStarted(new RunStartedData(nodeId)), null);

    public Task AgentStartedAsync(string agent, int depth, string? parent) =>
        AppendAsync(new AgentStarted(new AgentStartedData(agent, depth, parent)), agent, () =>
        {
            _openAgents.Add((agent, System.Diagnostics.Stopwatch.GetTimestamp()));
            return null;
        });

    public Task AgentThinkingAsync(string agent, string text) => AppendAsync(new AgentThinking(new AgentThinkingData(text)), agent);

    public Task AgentCompletedAsync(string agent, string status, JsonElement? result)
    {
        var duration = 0.0;
        return AppendAsync(() => new AgentCompleted(new AgentCompletedData(agent, status, duration, result)), agent, () =>
        {
            var index = _openAgents.FindLastIndex(a => a.Agent == agent);
            if (index < 0) return null;
            var closed = _openAgents[index];
            duration = Elapsed(closed.StartedTicks);
            _openAgents.RemoveAt(index);
            return () => _openAgents.Add(closed);
        });
    }

    /// <summary>
    /// <c>approval_requested</c>, stored by <paramref name="park"/> in the same transaction that parks the run (after everything the run
    /// queued before it is stored), then published; null when the run could not be parked.
    /// </summary>
    public async Task<T?> ApprovalRequestedAsync<T>(string agent, string callId, string tool, JsonElement arguments, IReadOnlyList<string> approvers, DateTimeOffset expiresAt,
        Func<ApexEvent, Task<(T? Result, ApexEvent? Stored)>> park) where T : class
    {
        await FlushAsync();
        var (result, stored) = await park(log.Prepare(Stamp(new ApprovalRequested(new ApprovalRequestedData(callId, tool, arguments, approvers, expiresAt)), agent)));
        if (stored is not null) log.Published(stored);
        return result;
    }

    public Task ApprovalResolvedAsync(string agent, ApprovalResolvedData data) => AppendAsync(new ApprovalResolved(data), agent);

    /// <summary>
    /// A run resumed after waiting for an approval: the agents it had opened (stored as started, not yet completed) are open again
    /// here, so that however the resumed run ends they are closed before its terminal event.
    /// </summary>
    public void Adopt(string agent)
    {
        lock (_gate) _openAgents.Add((agent, System.Diagnostics.Stopwatch.GetTimestamp()));
    }

    /// <summary>Waits until every event queued so far is stored (before the run parks itself to wait for an approval).</summary>
    public async Task FlushAsync()
    {
        Task[] pending;
        lock (_gate)
        {
            QueuePendingDelta();
            pending = [.. _inFlight.Select(f => f.Append)];
        }
        await Task.WhenAll(pending);
    }

    public Task AgentErrorAsync(string agent, string code, string message) => AppendAsync(new AgentError(new AgentErrorData(agent, code, message)), agent);

    public Task ToolExecutingAsync(string agent, string callId, string tool, JsonElement arguments) =>
        AppendAsync(new ToolExecuting(new ToolExecutingData(callId, tool, arguments)), agent, () =>
        {
            _openTools.Add((callId, tool, agent, System.Diagnostics.Stopwatch.GetTimestamp()));
            return null;
        });

    public Task ToolCompletedAsync(string agent, string callId, string tool, string status, double durationMs, JsonElement? result, string? error) =>
        AppendAsync(new ToolCompleted(new ToolCompletedData(callId, tool, status, durationMs, result, error)), agent, () =>
        {
            var closed = _openTools.FindAll(t => t.CallId == callId);
            _openTools.RemoveAll(t => t.CallId == callId);
            return () => _openTools.AddRange(closed);
        });

    public Task MessageDeltaAsync(string agent, string messageId, string delta)
    {
        if (deltaWindow <= TimeSpan.Zero) return AppendAsync(new MessageDelta(new MessageDeltaData(messageId, delta)), agent);
        lock (_gate)
        {
            if (_terminated) return Task.CompletedTask;
            if (_pendingDelta is { } pending && pending.MessageId == messageId && pending.Agent == agent)
            {
                pending.Text.Append(delta);
                return Task.CompletedTask;
            }
            QueuePendingDelta();
            var now = _time.GetTimestamp();
            if (_lastDeltaMessage != messageId)
            {
                _lastDeltaMessage = messageId;
                _answerStarted = now;
            }
            else
            {
                var age = _time.GetElapsedTime(_answerStarted, now) / WindowGrowth;
                var window = age < deltaWindow ? deltaWindow : age > deltaWindow * WindowGrowth ? deltaWindow * WindowGrowth : age;
                var waited = _time.GetElapsedTime(_lastDeltaQueued, now);
                if (waited < window)
                {
                    _pendingDelta = (agent, messageId, new System.Text.StringBuilder(delta));
                    _deltaTimer ??= _time.CreateTimer(static state => ((RunEvents)state!).OnDeltaWindowEnded(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
                    _deltaTimer.Change(window - waited, Timeout.InfiniteTimeSpan);
                    return Task.CompletedTask;
                }
            }
            // The first piece of an answer, or the first after a pause as long as the window, never waits.
            _lastDeltaQueued = now;
            Queue(new MessageDelta(new MessageDeltaData(messageId, delta)), agent, null);
        }
        return Task.CompletedTask;
    }

    private void OnDeltaWindowEnded()
    {
        lock (_gate)
        {
            if (!_terminated) QueuePendingDelta();
        }
    }

    /// <summary>Queues the joined pieces waiting for the end of their window (under the gate): before any other event of the run.</summary>
    private void QueuePendingDelta()
    {
        if (_pendingDelta is not { } pending) return;
        _pendingDelta = null;
        _lastDeltaQueued = _time.GetTimestamp();
        Queue(new MessageDelta(new MessageDeltaData(pending.MessageId, pending.Text.ToString())), pending.Agent, null);
    }

    public Task CompletedAsync(string messageId, double durationMs, RunUsageSummary? usage = null, string? note = null) =>
        TerminateAsync(new RunCompleted(new RunCompletedData(messageId, durationMs, usage, note)), "error");

    public Task FailedAsync(string reason, string message) => TerminateAsync(new RunFailed(new RunFailedData(reason, message)), "error");

    public Task CancelledAsync(string reason) => TerminateAsync(new RunCancelled(new RunCancelledData(reason)), "cancelled");

    /// <summary>
    /// Closes every open tool call and agent with an honest status, newest first, then writes the terminal event. A second
    /// call (the run's own end after a storage failure ended it) waits for the first one's terminal event.
    /// </summary>
    private Task TerminateAsync(ApexEvent terminal, string openStatus)
    {
        lock (_gate)
        {
            if (_terminated) return _termination;
            QueuePendingDelta();
            _deltaTimer?.Dispose();
            _terminated = true;
            (Task, Action?)[] inFlight = [.. _inFlight];
            _inFlight.Clear();
            _termination = WriteTerminationAsync(terminal, openStatus, inFlight);
            return _termination;
        }
    }

    private async Task WriteTerminationAsync(ApexEvent terminal, string openStatus, (Task Append, Action? Reopen)[] inFlight)
    {
        await Task.Yield(); // not under the gate
        // Everything the run wrote is committed before its terminal event. If an append failed, the run still gets its
        // terminal event (or, if the store is down, is ended at the next start or by another node when its lease expires).
        try
        {
            await Task.WhenAll(inFlight.Select(f => f.Append));
        }
        catch (Exception) when (terminal is not RunFailed)
        {
            terminal = new RunFailed(new RunFailedData(StorageError, "Storing the run's events failed; the server log has the details."));
        }
        catch (Exception)
        {
            // already failing: keep the original reason
        }
        List<(string CallId, string Tool, string Agent, long StartedTicks)> tools;
        List<(string Agent, long StartedTicks)> agents;
        lock (_gate)
        {
            // What a failed append would have closed is still open in the stored log.
            foreach (var (append, reopen) in inFlight) if (append.IsFaulted) reopen?.Invoke();
            tools = [.. _openTools];
            agents = [.. _openAgents];
            _openTools.Clear();
            _openAgents.Clear();
        }
        foreach (var tool in Enumerable.Reverse(tools))
            await ForceAppendAsync(new ToolCompleted(new ToolCompletedData(tool.CallId, tool.Tool, openStatus, Elapsed(tool.StartedTicks), null, $"The run ended ({terminal.Type}) while the tool was running.")), tool.Agent);
        foreach (var agent in Enumerable.Reverse(agents))
            await ForceAppendAsync(new AgentCompleted(new AgentCompletedData(agent.Agent, openStatus, Elapsed(agent.StartedTicks), null)), agent.Agent);
        await ForceAppendAsync(terminal, null);
    }

    private Task AppendAsync(ApexEvent evt, string? agent, Func<Action?>? change = null) => AppendAsync(() => evt, agent, change);

    /// <summary>
    /// Queues the event in the log, in order, without waiting for its commit: the run goes on while the
    /// log batches its events with other runs'. Clients still see an event only once it is stored.
    /// </summary>
    /// <remarks>
    /// <paramref name="change"/> updates what is open, under the same gate as the queuing, so that the run's end sees
    /// either both or neither; the action it returns puts back what the event closed, should the event not be stored.
    /// </remarks>
    private Task AppendAsync(Func<ApexEvent> make, string? agent, Func<Action?>? change)
    {
        lock (_gate)
        {
            if (_terminated) return Task.CompletedTask;
            QueuePendingDelta();
            var reopen = change?.Invoke();
            Queue(make(), agent, reopen);
        }
        return Task.CompletedTask;
    }

    /// <summary>Queues one event (under the gate).</summary>
    private void Queue(ApexEvent evt, string? agent, Action? reopen)
    {
        // Appends are not tied to the run's token: the events that report a cancellation must still be written.
        var append = log.AppendAsync(Stamp(evt, agent), CancellationToken.None);
        if (_inFlight.Count > 64) _inFlight.RemoveAll(t => t.Append.IsCompletedSuccessfully);
        _inFlight.Add((append, reopen));
        append.ContinueWith(static (task, state) => ((RunEvents)state!).OnAppendFailed(task.Exception!.GetBaseException()), this,
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private Task ForceAppendAsync(ApexEvent evt, string? agent) => log.AppendAsync(Stamp(evt, agent), CancellationToken.None);

    private ApexEvent Stamp(ApexEvent evt, string? agent) => evt with { ThreadId = threadId, RunId = runId, UserId = userId, AgentName = agent };

    /// <summary>One of the run's own appends failed for good: the run ends now, not after its lease runs out.</summary>
    private void OnAppendFailed(Exception exception)
    {
        var ending = TerminateAsync(new RunFailed(new RunFailedData(StorageError, "Storing the run's events failed; the server log has the details.")), "error");
        try
        {
            storageFailed?.Invoke();
        }
        catch (ObjectDisposedException)
        {
            // the run's work had already ended
        }
        // Observed here; the run's own end awaits the same task and sees its outcome.
        ending.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private static double Elapsed(long startedTicks) => Math.Round(System.Diagnostics.Stopwatch.GetElapsedTime(startedTicks).TotalMilliseconds, 3);
}
