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
    public bool Succeeded => Status == "ok";
}

/// <summary>
/// Runs one agent: the model is called with the agent's instructions and tools; its tool calls go
/// through the <see cref="ToolDispatcher"/> and their results back to the model, until it answers.
/// </summary>
internal sealed partial class AgentRunner(IChatClient chat, ToolRegistry tools, ToolDispatcher dispatcher, RunEvents events, RunUsage usage, RunBudget? budget,
    ApexTelemetry telemetry, LimitsOptions limits, ILogger logger)
{
    public async Task<AgentOutcome> RunAsync(AgentDefinition agent, UserExecutionContext parent, string brief, string? answerMessageId, CancellationToken cancellationToken)
    {
        using var span = telemetry.Source.StartActivity("apex.agent " + agent.Name);
        span?.SetTag("apex.agent", agent.Name);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(agent.Timeout ?? limits.AgentTimeout);
        var context = parent.CreateChild("agent:" + agent.Name);
        await events.AgentStartedAsync(agent.Name, context.Depth, AgentNames.Supervisor);
        await events.AgentThinkingAsync(agent.Name, agent.Purpose + ".");
        try
        {
            var text = await ConverseAsync(agent, context, brief, answerMessageId, timeout.Token);
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
    private async Task<string> ConverseAsync(AgentDefinition agent, UserExecutionContext context, string brief, string? answerMessageId, CancellationToken cancellationToken)
    {
        List<ChatMessage> messages = [new(ChatRole.System, agent.Instructions), new(ChatRole.User, brief)];
        // An agent with no tools of its own is offered none (not even a configured MCP server's).
        IList<AITool> functions = agent.Tools.IsEmpty ? [] : tools.Functions(agent.Tools, dispatcher, context, agent.Name, agent.OffersConfiguredTools);
        var options = new ChatOptions
        {
            Tools = functions.Count == 0 ? null : functions,
            ToolMode = functions.Count == 0 ? null : ChatToolMode.Auto,
            ResponseFormat = agent.OutputSchema is { } schema ? ChatResponseFormat.ForJsonSchema(schema, agent.Name) : null,
        };
        if (budget is not null) (options.AdditionalProperties ??= [])[Llm.BudgetChatClient.OptionKey] = budget;
        var turn = new StringBuilder();
        var turnCalledTools = false;
        var rounds = 0;
        await foreach (var update in chat.GetStreamingResponseAsync(messages, options, cancellationToken))
        {
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
                    case FunctionCallContent:
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
        return turn.ToString();
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
