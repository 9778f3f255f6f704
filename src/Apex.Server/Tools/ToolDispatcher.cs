using System.Diagnostics;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.AI;

namespace Apex.Server.Tools;

/// <summary>
/// Executes the model's tool calls for one run: validates arguments, checks the user's tier,
/// applies the tool timeout and emits <c>tool_executing</c>/<c>tool_completed</c> (the usage log is written with the latter).
/// Every failure comes back as a result the model can read; only the end of the run or of the agent escapes, and then
/// the call is closed with what ended it: <c>cancelled</c> (the run was cancelled) or <c>timeout</c> (the run's, the
/// agent's or the tool's own time limit). A tool that ignores its token is not waited for: it is abandoned, and its
/// late result dropped and logged.
/// </summary>
/// <remarks>
/// A call that needs a person's approval is not run: the first one of a round becomes the run's <see cref="Pending"/> approval,
/// and it and every later call of the round are deferred (they get a placeholder result and the library's loop is told to stop),
/// so the agent's round ends there and the run can park itself; they run, or are rejected, when it resumes.
/// </remarks>
internal sealed partial class ToolDispatcher(ToolRegistry tools, RunEvents events, RunControl run, ApexTelemetry telemetry, LimitsOptions limits, ILogger logger)
{
    /// <summary>The status of a call a person rejected, or nobody answered in time.</summary>
    public const string Rejected = "rejected";

    private readonly Lock _gate = new();
    private readonly HashSet<string> _deferred = new(StringComparer.Ordinal);
    private PendingApproval? _pending;

    /// <summary>The call of this run that waits for approval, if one was met.</summary>
    public PendingApproval? Pending { get { lock (_gate) return _pending; } }

    /// <summary>Whether the call was deferred (its result is only a placeholder).</summary>
    public bool IsDeferred(string callId) { lock (_gate) return _deferred.Contains(callId); }

    public async Task<FunctionResultContent> InvokeAsync(UserExecutionContext agentContext, string agent, FunctionCallContent call, bool requiresApproval,
        CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_pending is not null || requiresApproval)
            {
                _pending ??= new PendingApproval(agent, call.CallId, call.Name, Arguments(call));
                _deferred.Add(call.CallId);
                // The library's loop runs no further round: the agent stops here, and the run parks itself.
                if (FunctionInvokingChatClient.CurrentContext is { } loop) loop.Terminate = true;
                return new FunctionResultContent(call.CallId, ErrorResult("waiting", "This call waits for a person's approval."));
            }
        }
        return await InvokeNowAsync(agentContext, agent, call, cancellationToken);
    }

    /// <summary>A call a person rejected (or nobody answered in time): closed as <c>rejected</c>, and the model told why.</summary>
    public async Task<FunctionResultContent> RejectAsync(string agent, FunctionCallContent call, string message)
    {
        await events.ToolCompletedAsync(agent, call.CallId, call.Name, Rejected, 0, null, message);
        return new FunctionResultContent(call.CallId, ErrorResult(Rejected, message));
    }

    private static JsonElement Arguments(FunctionCallContent call) => call.Exception is null
        ? JsonSerializer.SerializeToElement(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions)
        : JsonSerializer.SerializeToElement(new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions);

    private async Task<FunctionResultContent> InvokeNowAsync(UserExecutionContext agentContext, string agent, FunctionCallContent call, CancellationToken cancellationToken)
    {
        using var span = telemetry.Source.StartActivity("apex.tool " + call.Name);
        span?.SetTag("apex.tool", call.Name);
        var context = agentContext.CreateChild("tool:" + call.Name);
        var arguments = Arguments(call);
        await events.ToolExecutingAsync(agent, call.CallId, call.Name, arguments);
        var started = Stopwatch.GetTimestamp();

        var (status, result, error) = await ExecuteAsync(context, agent, call, arguments, cancellationToken);
        var duration = Math.Round(Stopwatch.GetElapsedTime(started).TotalMilliseconds, 3);
        await events.ToolCompletedAsync(agent, call.CallId, call.Name, status, duration, result, error);
        LogToolCall(logger, call.Name, status, duration, context.RunId);
        span?.SetTag("apex.tool.status", status);

        // The run or the agent is over: the agent stops here, and the run or the agent runner reports why.
        cancellationToken.ThrowIfCancellationRequested();
        return new FunctionResultContent(call.CallId, result ?? ErrorResult(status, error!));
    }

    private async Task<(string Status, JsonElement? Result, string? Error)> ExecuteAsync(UserExecutionContext context, string agent, FunctionCallContent call,
        JsonElement arguments, CancellationToken cancellationToken)
    {
        var name = call.Name;
        // Arguments that did not parse (truncated or malformed JSON) are not run as {}: the model is told, so it can send them again.
        if (call.Exception is { } unparsed)
            return ("invalid", null, $"The arguments of '{name}' are not valid JSON ({unparsed.Message}); send the call again with a JSON object that matches the tool's schema.");
        var tool = tools.Find(name);
        if (tool is null) return ("invalid", null, $"There is no tool named '{name}'. Available: {string.Join(", ", tools.Names)}.");
        if (!Tiers.Allows(context.Tier, tool.RequiredTier))
            return ("denied", null, $"'{name}' needs the {tool.RequiredTier} plan; this user is on {context.Tier}. Continue without it.");
        var problem = SchemaValidator.Validate(tool.ParametersSchema, arguments);
        if (problem is not null) return ("invalid", null, problem);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limits.ToolTimeout);
        Task<JsonElement>? invocation = null;
        try
        {
            invocation = tool.InvokeAsync(context, arguments, timeout.Token);
            return ("ok", await invocation.WaitAsync(timeout.Token), null);
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            if (invocation is { IsCompleted: false }) Abandon(invocation, name, context.RunId);
            if (run.Token.IsCancellationRequested)
                return run.Reason == CancelReasons.Timeout
                    ? ("timeout", null, $"The run's time limit ({limits.RunTimeout.TotalSeconds:0.#} s) ran out while the tool was running.")
                    : ("cancelled", null, $"The run was cancelled ({run.Reason}) while the tool was running.");
            if (cancellationToken.IsCancellationRequested)
                return ("timeout", null, $"The {agent} agent's time limit ({limits.AgentTimeout.TotalSeconds:0.#} s) ran out while the tool was running.");
            return ("timeout", null, $"The tool did not finish within {limits.ToolTimeout.TotalSeconds:0.#} s.");
        }
        catch (ToolException ex)
        {
            return ("error", null, ex.Message);
        }
        catch (Exception ex)
        {
            LogToolCrashed(logger, ex, name);
            return ("error", null, "The tool failed unexpectedly.");
        }
    }

    /// <summary>Approved (with these arguments, when given): the call runs now, bypassing the approval it already had.</summary>
    public Task<FunctionResultContent> InvokeApprovedAsync(UserExecutionContext agentContext, string agent, FunctionCallContent call, CancellationToken cancellationToken) =>
        InvokeNowAsync(agentContext, agent, call, cancellationToken);

    /// <summary>The dispatcher stopped waiting for a tool that did not stop on its token; whatever it returns later is dropped.</summary>
    private void Abandon(Task<JsonElement> invocation, string tool, string runId) =>
        // A tool that stops on its token a moment later is not news; one that finishes or fails after it was let go is.
        invocation.ContinueWith(t => LogAbandonedResult(logger, t.Exception?.InnerException, tool, runId, t.Status), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously | TaskContinuationOptions.NotOnCanceled, TaskScheduler.Default);

    private static JsonElement ErrorResult(string status, string error) =>
        JsonSerializer.SerializeToElement(new ToolErrorResult(status, error), ApexJsonContext.Default.ToolErrorResult);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Tool {Tool} ended {Status} in {DurationMs} ms (run {RunId})")]
    private static partial void LogToolCall(ILogger logger, string tool, string status, double durationMs, string runId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Tool {Tool} of run {RunId} ended ({Status}) after it was abandoned; its result is dropped")]
    private static partial void LogAbandonedResult(ILogger logger, Exception? exception, string tool, string runId, TaskStatus status);

    [LoggerMessage(Level = LogLevel.Error, Message = "Tool {Tool} crashed")]
    private static partial void LogToolCrashed(ILogger logger, Exception exception, string tool);
}

/// <summary>A tool call that must wait for a person's approval: the agent that made it, its id, tool and arguments.</summary>
internal sealed record PendingApproval(string Agent, string CallId, string Tool, JsonElement Arguments);
