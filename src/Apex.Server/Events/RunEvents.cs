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
internal sealed class RunEvents(string userId, string threadId, string runId, EventLog log, Action? storageFailed = null)
{
    public const string StorageError = "storage_error";

    private readonly Lock _gate = new();
    private readonly List<(string CallId, string Tool, string Agent, long StartedTicks)> _openTools = [];
    private readonly List<(string Agent, long StartedTicks)> _openAgents = [];
    private readonly List<Task> _inFlight = [];
    private bool _terminated;
    private Task _termination = Task.CompletedTask;

    public bool Terminated { get { lock (_gate) return _terminated; } }

    public Task RunStartedAsync(string nodeId) => AppendAsync(new RunStarted(new RunStartedData(nodeId)), null);

    public Task AgentStartedAsync(string agent, int depth, string? parent)
    {
        lock (_gate) _openAgents.Add((agent, System.Diagnostics.Stopwatch.GetTimestamp()));
        return AppendAsync(new AgentStarted(new AgentStartedData(agent, depth, parent)), agent);
    }

    public Task AgentThinkingAsync(string agent, string text) => AppendAsync(new AgentThinking(new AgentThinkingData(text)), agent);

    public Task AgentCompletedAsync(string agent, string status, JsonElement? result)
    {
        double duration;
        lock (_gate)
        {
            var index = _openAgents.FindLastIndex(a => a.Agent == agent);
            duration = index < 0 ? 0 : Elapsed(_openAgents[index].StartedTicks);
            if (index >= 0) _openAgents.RemoveAt(index);
        }
        return AppendAsync(new AgentCompleted(new AgentCompletedData(agent, status, duration, result)), agent);
    }

    public Task AgentErrorAsync(string agent, string code, string message) => AppendAsync(new AgentError(new AgentErrorData(agent, code, message)), agent);

    public Task ToolExecutingAsync(string agent, string callId, string tool, JsonElement arguments)
    {
        lock (_gate) _openTools.Add((callId, tool, agent, System.Diagnostics.Stopwatch.GetTimestamp()));
        return AppendAsync(new ToolExecuting(new ToolExecutingData(callId, tool, arguments)), agent);
    }

    public Task ToolCompletedAsync(string agent, string callId, string tool, string status, double durationMs, JsonElement? result, string? error)
    {
        lock (_gate) _openTools.RemoveAll(t => t.CallId == callId);
        return AppendAsync(new ToolCompleted(new ToolCompletedData(callId, tool, status, durationMs, result, error)), agent);
    }

    public Task MessageDeltaAsync(string agent, string messageId, string delta) => AppendAsync(new MessageDelta(new MessageDeltaData(messageId, delta)), agent);

    public Task CompletedAsync(string messageId, double durationMs) => TerminateAsync(new RunCompleted(new RunCompletedData(messageId, durationMs)), "error");

    public Task FailedAsync(string reason, string message) => TerminateAsync(new RunFailed(new RunFailedData(reason, message)), "error");

    public Task CancelledAsync(string reason) => TerminateAsync(new RunCancelled(new RunCancelledData(reason)), "cancelled");

    /// <summary>
    /// Closes every open tool call and agent with an honest status, newest first, then writes the terminal event. A second
    /// call (the run's own end after a storage failure ended it) waits for the first one's terminal event.
    /// </summary>
    private Task TerminateAsync(ApexEvent terminal, string openStatus)
    {
        List<(string CallId, string Tool, string Agent, long StartedTicks)> tools;
        List<(string Agent, long StartedTicks)> agents;
        Task[] inFlight;
        lock (_gate)
        {
            if (_terminated) return _termination;
            _terminated = true;
            tools = [.. _openTools];
            agents = [.. _openAgents];
            _openTools.Clear();
            _openAgents.Clear();
            inFlight = [.. _inFlight];
            _inFlight.Clear();
            _termination = WriteTerminationAsync(terminal, openStatus, tools, agents, inFlight);
            return _termination;
        }
    }

    private async Task WriteTerminationAsync(ApexEvent terminal, string openStatus, List<(string CallId, string Tool, string Agent, long StartedTicks)> tools,
        List<(string Agent, long StartedTicks)> agents, Task[] inFlight)
    {
        await Task.Yield(); // not under the gate
        // Everything the run wrote is committed before its terminal event. If an append failed, the run still gets its
        // terminal event (or, if the store is down, is ended at the next start or by another node when its lease expires).
        try
        {
            await Task.WhenAll(inFlight);
        }
        catch (Exception ex) when (terminal is not RunFailed)
        {
            terminal = new RunFailed(new RunFailedData(StorageError, $"Storing the run's events failed: {ex.Message}"));
        }
        catch (Exception)
        {
            // already failing: keep the original reason
        }
        foreach (var tool in Enumerable.Reverse(tools))
            await AppendAsync(new ToolCompleted(new ToolCompletedData(tool.CallId, tool.Tool, openStatus, Elapsed(tool.StartedTicks), null, $"The run ended ({terminal.Type}) while the tool was running.")), tool.Agent, force: true);
        foreach (var agent in Enumerable.Reverse(agents))
            await AppendAsync(new AgentCompleted(new AgentCompletedData(agent.Agent, openStatus, Elapsed(agent.StartedTicks), null)), agent.Agent, force: true);
        await AppendAsync(terminal, null, force: true);
    }

    /// <summary>
    /// Queues the event in the log, in order, without waiting for its commit: the run goes on while the
    /// log batches its events with other runs'. Clients still see an event only once it is stored.
    /// </summary>
    private Task AppendAsync(ApexEvent evt, string? agent, bool force = false)
    {
        // Appends are not tied to the run's token: the events that report a cancellation must still be written.
        var stamped = evt with { ThreadId = threadId, RunId = runId, UserId = userId, AgentName = agent };
        if (force) return log.AppendAsync(stamped, CancellationToken.None);
        lock (_gate)
        {
            if (_terminated) return Task.CompletedTask;
            var append = log.AppendAsync(stamped, CancellationToken.None);
            if (_inFlight.Count > 64) _inFlight.RemoveAll(t => t.IsCompletedSuccessfully);
            _inFlight.Add(append);
            append.ContinueWith(static (task, state) => ((RunEvents)state!).OnAppendFailed(task.Exception!.GetBaseException()), this,
                CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        return Task.CompletedTask;
    }

    /// <summary>One of the run's own appends failed for good: the run ends now, not after its lease runs out.</summary>
    private void OnAppendFailed(Exception exception)
    {
        var ending = TerminateAsync(new RunFailed(new RunFailedData(StorageError, $"Storing the run's events failed: {exception.Message}")), "error");
        storageFailed?.Invoke();
        // Observed here; the run's own end awaits the same task and sees its outcome.
        ending.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private static double Elapsed(long startedTicks) => Math.Round(System.Diagnostics.Stopwatch.GetElapsedTime(startedTicks).TotalMilliseconds, 3);
}
