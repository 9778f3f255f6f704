using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Tools;
using Microsoft.Extensions.AI;

namespace Apex.Server.Agents;

internal sealed record AgentOutcome(string Status, JsonElement? Result, string Text)
{
    public const string Waiting = "waiting";

    public bool Succeeded => Status == "ok";

    /// <summary>Set when the agent stopped at a call that waits for approval (status <c>waiting</c>): what it resumes from.</summary>
    public AgentSuspension? Suspension { get; init; }
}

/// <summary>An agent stopped at a call that waits for approval: the call, its conversation so far and the rounds of calls it used.</summary>
internal sealed record AgentSuspension(PendingApproval Call, IReadOnlyList<CheckpointMessage> Conversation, int Rounds);

/// <summary>An agent resumed after a call of it waited: its stored conversation and rounds, and the answer to that call.</summary>
internal sealed record AgentResume(IReadOnlyList<CheckpointMessage> Conversation, int Rounds, Storage.ApprovalRecord Decision);

/// <summary>
/// Runs one agent: the model is called with the agent's instructions and tools; its tool calls go
/// through the <see cref="ToolDispatcher"/> and their results back to the model, until it answers.
/// </summary>
internal sealed partial class AgentRunner(IChatClient chat, ToolRegistry tools, ToolDispatcher dispatcher, RunEvents events, RunUsage usage, RunBudget? budget,
    ApexTelemetry telemetry, LimitsOptions limits, ILogger logger)
{
    public async Task<AgentOutcome> RunAsync(AgentDefinition agent, UserExecutionContext parent, string brief, string? answerMessageId, CancellationToken cancellationToken,
        AgentResume? resume = null)
    {
        using var span = telemetry.Source.StartActivity("apex.agent " + agent.Name);
        span?.SetTag("apex.agent", agent.Name);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(agent.Timeout ?? limits.AgentTimeout);
        var context = parent.CreateChild("agent:" + agent.Name);
        List<ChatMessage> messages;
        var rounds = 0;
        if (resume is null)
        {
            await events.AgentStartedAsync(agent.Name, context.Depth, AgentNames.Supervisor);
            await events.AgentThinkingAsync(agent.Name, agent.Purpose + ".");
            messages = [new(ChatRole.System, agent.Instructions), new(ChatRole.User, brief)];
        }
        else
        {
            messages = [.. resume.Conversation.Select(Checkpoints.ToMessage)];
            rounds = resume.Rounds;
        }
        try
        {
            if (resume is not null && await CompleteRoundAsync(agent, context, messages, resume.Decision, timeout.Token) is { } stillWaiting)
                return new AgentOutcome(AgentOutcome.Waiting, null, "") { Suspension = stillWaiting with { Rounds = rounds } };
            var (text, suspension) = await ConverseAsync(agent, context, messages, rounds, answerMessageId, timeout.Token);
            if (suspension is not null) return new AgentOutcome(AgentOutcome.Waiting, null, text) { Suspension = suspension };
            if (agent.OutputSchema is not { } schema)
            {
                await events.AgentCompletedAsync(agent.Name, "ok", null);
                return new AgentOutcome("ok", null, text);
            }
            var result = ParseResult(text);
            if (SchemaValidator.Validate(schema, result) is { } problem)
            {
                // A result that does not match the agent's schema is not passed on as if it did.
                await events.AgentErrorAsync(agent.Name, "invalid_result", $"The {agent.Name} agent's result does not match its schema: {problem}");
                await events.AgentCompletedAsync(agent.Name, "error", result);
                return new AgentOutcome("error", null, text);
            }
            await events.AgentCompletedAsync(agent.Name, "ok", result);
            return new AgentOutcome("ok", result, text);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw; // the run is ending: the engine closes this agent with the run's status
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            var message = $"The {agent.Name} agent did not finish within {(agent.Timeout ?? limits.AgentTimeout).TotalSeconds:0.#} s.";
            await events.AgentErrorAsync(agent.Name, "timeout", message);
            await events.AgentCompletedAsync(agent.Name, "error", null);
            return new AgentOutcome("timeout", null, message);
        }
        catch (BudgetExceededException)
        {
            throw; // the run ends here (run_failed budget_exceeded); the engine closes this agent
        }
        catch (TurnsExceededException ex)
        {
            await events.AgentErrorAsync(agent.Name, "max_turns", $"The {agent.Name} agent wanted more than its {ex.MaxTurns} rounds of tool calls (max_turns).");
            await events.AgentCompletedAsync(agent.Name, "error", null);
            return new AgentOutcome("max_turns", null, ex.Message);
        }
        catch (Llm.ModelCallException ex)
        {
            // The code and a clean message for the user; what the provider said is in the server log.
            await events.AgentErrorAsync(agent.Name, ex.Code, $"The {agent.Name} agent's model call failed: {ex.Message}");
            await events.AgentCompletedAsync(agent.Name, "error", null);
            return new AgentOutcome(ex.Code, null, ex.Message);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            LogAgentFailed(logger, ex, agent.Name, parent.RunId);
            await events.AgentErrorAsync(agent.Name, "agent_failed", $"The {agent.Name} agent failed: {ex.Message}");
            await events.AgentCompletedAsync(agent.Name, "error", null);
            return new AgentOutcome("error", null, ex.Message);
        }
    }

    /// <summary>
    /// One call of the model pipeline, whose function-invocation loop (Microsoft.Extensions.AI) runs the agent's tool
    /// calls through the dispatcher and gives the results back to the model until it answers. Text of a turn that asked
    /// for tools is the agent thinking aloud; the last turn's text is its answer.
    /// </summary>
    /// <remarks>
    /// When a call needs approval, the loop stops after its round (the dispatcher defers it and the calls after it): the conversation so
    /// far, without the placeholders of the deferred calls, is what the agent resumes from.
    /// </remarks>
    private async Task<(string Text, AgentSuspension? Suspension)> ConverseAsync(AgentDefinition agent, UserExecutionContext context, List<ChatMessage> messages, int rounds,
        string? answerMessageId, CancellationToken cancellationToken)
    {
        // An agent with no tools of its own is offered none (not even a configured MCP server's).
        IList<AITool> functions = agent.Tools.IsEmpty ? [] : tools.Functions(agent.Tools, dispatcher, context, agent.Name, agent.OffersConfiguredTools, agent.RequiresApproval);
        var options = new ChatOptions
        {
            Tools = functions.Count == 0 ? null : functions,
            ToolMode = functions.Count == 0 ? null : ChatToolMode.Auto,
            ResponseFormat = agent.OutputSchema is { } schema ? ChatResponseFormat.ForJsonSchema(schema, agent.Name) : null,
        };
        if (budget is not null) (options.AdditionalProperties ??= [])[Llm.BudgetChatClient.OptionKey] = budget;
        var turn = new StringBuilder();
        var turnCalledTools = false;
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in chat.GetStreamingResponseAsync(messages, options, cancellationToken))
        {
            updates.Add(update);
            foreach (var content in update.Contents)
            {
                switch (content)
                {
                    case TextContent { Text.Length: > 0 } t:
                        turn.Append(t.Text);
                        if (answerMessageId is not null) await events.MessageDeltaAsync(agent.Name, answerMessageId, t.Text);
                        break;
                    case TextReasoningContent { Text.Length: > 0 } r:
                        await events.AgentThinkingAsync(agent.Name, r.Text);
                        break;
                    case FunctionCallContent when dispatcher.Pending is null:
                        // A definition's max_turns: the round of calls past it is not run (the server-wide cap is the pipeline's).
                        if (!turnCalledTools && ++rounds > (agent.MaxTurns ?? int.MaxValue)) throw new TurnsExceededException(agent.MaxTurns!.Value);
                        turnCalledTools = true;
                        break;
                    case FunctionResultContent:
                        // The loop ran this turn's calls; the model speaks again next.
                        if (turnCalledTools && turn.Length > 0) await events.AgentThinkingAsync(agent.Name, turn.ToString());
                        turn.Clear();
                        turnCalledTools = false;
                        break;
                    case UsageContent u:
                        // A provider's chunks may leave the model out: then it is the endpoint's configured model.
                        usage.Add(agent.Name, update.ModelId ?? chat.GetService<ChatClientMetadata>()?.DefaultModelId ?? "unknown", u.Details);
                        break;
                }
            }
        }
        if (dispatcher.Pending is { } pending)
        {
            List<ChatMessage> conversation = [.. messages, .. updates.ToChatResponse().Messages];
            return (turn.ToString(), new AgentSuspension(pending, Checkpoints.From(conversation, dispatcher.IsDeferred), rounds));
        }
        return (turn.ToString(), null);
    }

    /// <summary>
    /// Resuming: the round of calls that stopped at the approval is completed before the model speaks again. The answered call runs
    /// (with the approver's arguments, when they edited them) or is closed <c>rejected</c> with the reason the model reads; the calls
    /// after it run in turn, and one that needs approval itself parks the agent again (returned).
    /// </summary>
    private async Task<AgentSuspension?> CompleteRoundAsync(AgentDefinition agent, UserExecutionContext context, List<ChatMessage> messages, Storage.ApprovalRecord decision,
        CancellationToken cancellationToken)
    {
        var asked = messages.FindLastIndex(m => m.Role == ChatRole.Assistant && m.Contents.OfType<FunctionCallContent>().Any());
        if (asked < 0) return null;
        var answered = messages.Skip(asked + 1).SelectMany(m => m.Contents).OfType<FunctionResultContent>().Select(r => r.CallId).ToHashSet(StringComparer.Ordinal);
        var contents = messages[asked].Contents;
        var results = new List<AIContent>();
        for (var i = 0; i < contents.Count; i++)
        {
            if (contents[i] is not FunctionCallContent call || answered.Contains(call.CallId)) continue;
            if (call.CallId == decision.CallId && dispatcher.Pending is null)
            {
                if (decision.Status == Storage.ApprovalStatus.Approved)
                {
                    if (decision.EditedArguments is { } edited)
                    {
                        // What ran is what the model's history shows: its call with the approver's arguments.
                        call = new FunctionCallContent(call.CallId, call.Name, Checkpoints.ArgumentsOf(edited));
                        contents[i] = call;
                    }
                    results.Add(await dispatcher.InvokeApprovedAsync(context, agent.Name, call, cancellationToken));
                }
                else
                {
                    var message = decision.Status == Storage.ApprovalStatus.Expired
                        ? $"Nobody approved the call of '{call.Name}' in time, so it did not run. Continue without it."
                        : $"The user rejected the call of '{call.Name}', so it did not run{(decision.Reason is { Length: > 0 } why ? $": {why}" : ".")} Continue without it.";
                    results.Add(await dispatcher.RejectAsync(agent.Name, call, message));
                }
                continue;
            }
            var result = await dispatcher.InvokeAsync(context, agent.Name, call, agent.RequiresApproval(call.Name), cancellationToken);
            if (!dispatcher.IsDeferred(call.CallId)) results.Add(result);
        }
        if (results.Count > 0) messages.Add(new ChatMessage(ChatRole.Tool, results));
        return dispatcher.Pending is { } pending ? new AgentSuspension(pending, Checkpoints.From(messages, dispatcher.IsDeferred), 0) : null;
    }

    /// <summary>Agents answer with a JSON object; a model that wraps it in a code fence or prose still counts.</summary>
    internal static JsonElement ParseResult(string text)
    {
        var start = text.IndexOf('{');
        var end = text.LastIndexOf('}');
        if (start >= 0 && end > start)
        {
            try
            {
                using var document = JsonDocument.Parse(text.AsMemory(start, end - start + 1));
                if (document.RootElement.ValueKind == JsonValueKind.Object) return document.RootElement.Clone();
            }
            catch (JsonException)
            {
                // not JSON: fall through and keep the text
            }
        }
        return JsonSerializer.SerializeToElement(new TextResult(text), ApexJsonContext.Default.TextResult);
    }

    private sealed class TurnsExceededException(int maxTurns) : Exception($"More than {maxTurns} rounds of tool calls.")
    {
        public int MaxTurns => maxTurns;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Agent {Agent} failed in run {RunId}")]
    private static partial void LogAgentFailed(ILogger logger, Exception exception, string agent, string runId);
}
