using System.Net.ServerSentEvents;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Auth;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Apex.Server.Interop;

/// <summary>
/// The AG-UI door at <c>POST /api/agui</c>: AG-UI's <c>RunAgentInput</c> in, the run's events out as AG-UI events over SSE.
/// <c>threadId</c> names an Apex thread of the caller's; one the caller does not have (unknown, or another user's) starts a new
/// thread, whose id <c>RUN_STARTED</c> carries. The last user message is the request; <c>forwardedProps.agent</c> names the agent or
/// team that answers (id or name; none: the shipped team).
/// </summary>
internal static class AgUiEndpoints
{
    public const string Path = "/api/agui";

    public static IEndpointConventionBuilder MapAgUiEndpoints(this IEndpointRouteBuilder app) =>
        app.MapPost(Path, RunAgent).RequireAuthorization().WithTags("AG-UI");

    private static async Task<Results<ServerSentEventsResult<AgUiEvent>, ProblemHttpResult, ValidationProblem>> RunAgent(AgUiRunAgentInput input,
        CurrentUser user, DoorRuns doors, CancellationToken cancellationToken)
    {
        var messages = input.Messages ?? [];
        var last = messages.Select((m, i) => (Message: m, Index: i)).LastOrDefault(p => p.Message.Role == "user" && DoorRuns.TextOf(p.Message.Content).Length > 0);
        if (last.Message is null) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["messages"] = ["messages must hold a user message with text."] });
        var earlier = messages.Take(last.Index).Where(m => m.Role is "user" or "assistant" or "system")
            .Select(m => new EarlierTurn(m.Role, DoorRuns.TextOf(m.Content))).Where(t => t.Text.Length > 0).ToList();
        var threadId = input.ThreadId is { Length: > 0 } id && await doors.OwnsThreadAsync(user.Id, id, cancellationToken) ? id : null;

        // forwardedProps.agent names the agent or team (AG-UI leaves forwardedProps to the server).
        var agent = input.ForwardedProps is { ValueKind: JsonValueKind.Object } props && props.TryGetProperty("agent", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() : null;
        return await doors.SubmitAsync(user.Id, threadId, DoorRuns.TextOf(last.Message.Content), earlier, agent, cancellationToken) switch
        {
            DoorSubmission.Started started => TypedResults.ServerSentEvents(Translate(started.Run, doors.FollowAsync(user.Id, started.Run, cancellationToken))),
            DoorSubmission.Refused refused => TypedResults.Problem(statusCode: DoorRuns.StatusFor(refused.Code), title: refused.Code, detail: refused.Message),
            _ => throw new InvalidOperationException("DoorSubmission is a closed type."),
        };
    }

    private static async IAsyncEnumerable<SseItem<AgUiEvent>> Translate(DoorRun run, IAsyncEnumerable<ApexEvent> events, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var translator = new AgUiTranslator(run);
        yield return new SseItem<AgUiEvent>(translator.Started());
        await foreach (var evt in events.WithCancellation(cancellationToken))
            foreach (var translated in translator.Translate(evt))
                yield return new SseItem<AgUiEvent>(translated);
    }
}

/// <summary>
/// Turns one run's Apex events into AG-UI events, keeping what AG-UI's client verifies: a step per agent, opened and finished
/// in order; each text message started before its content and ended before the run ends; nothing after <c>RUN_FINISHED</c>.
/// Every Apex envelope also goes out whole as a <c>CUSTOM</c> event named <c>apex.&lt;type&gt;</c>.
/// </summary>
internal sealed class AgUiTranslator(DoorRun run)
{
    private readonly List<string> _steps = [];
    private readonly Dictionary<string, string> _openMessages = [];
    private readonly Dictionary<(string? Agent, string CallId), string> _toolCalls = [];

    public AgUiEvent Started() => new AgUiRunStarted(run.ThreadId, run.RunId);

    public IEnumerable<AgUiEvent> Translate(ApexEvent evt)
    {
        var at = evt.Timestamp.ToUnixTimeMilliseconds();
        var id = evt.EventId ?? $"{run.RunId}-{evt.Seq}";
        yield return new AgUiCustom("apex." + evt.Type, evt) { Timestamp = at };
        switch (evt)
        {
            case AgentStarted started when !_steps.Contains(started.Data.Agent):
                _steps.Add(started.Data.Agent);
                yield return new AgUiStepStarted(started.Data.Agent) { Timestamp = at };
                break;
            case AgentCompleted completed when _steps.Contains(completed.Data.Agent):
                foreach (var ended in CloseMessages(completed.Data.Agent, at)) yield return ended;
                _steps.Remove(completed.Data.Agent);
                yield return new AgUiStepFinished(completed.Data.Agent) { Timestamp = at };
                break;
            case AgentThinking thinking when thinking.Data.Text.Length > 0:
                yield return new AgUiReasoningStart(id) { Timestamp = at };
                yield return new AgUiReasoningMessageStart(id) { Timestamp = at };
                yield return new AgUiReasoningMessageContent(id, thinking.Data.Text) { Timestamp = at };
                yield return new AgUiReasoningMessageEnd(id) { Timestamp = at };
                yield return new AgUiReasoningEnd(id) { Timestamp = at };
                break;
            case ToolExecuting executing:
                // Call ids are the model's and need not be unique across a run's agents; the event id is.
                _toolCalls[(evt.AgentName, executing.Data.CallId)] = id;
                yield return new AgUiToolCallStart(id, executing.Data.Tool) { Timestamp = at };
                yield return new AgUiToolCallArgs(id, executing.Data.Arguments.GetRawText()) { Timestamp = at };
                yield return new AgUiToolCallEnd(id) { Timestamp = at };
                break;
            case ToolCompleted completed when _toolCalls.Remove((evt.AgentName, completed.Data.CallId), out var callId):
                var content = completed.Data.Result is { ValueKind: not JsonValueKind.Undefined } result ? result.GetRawText()
                    : completed.Data.Error ?? completed.Data.Status;
                yield return new AgUiToolCallResult(id, callId, content) { Timestamp = at };
                break;
            case MessageDelta delta:
                if (_openMessages.TryAdd(delta.Data.MessageId, evt.AgentName ?? ""))
                    yield return new AgUiTextMessageStart(delta.Data.MessageId, "assistant") { Timestamp = at };
                if (delta.Data.Delta.Length > 0) yield return new AgUiTextMessageContent(delta.Data.MessageId, delta.Data.Delta) { Timestamp = at };
                break;
            case RunCompleted completed:
                foreach (var closed in CloseAll(at)) yield return closed;
                yield return new AgUiRunFinished(run.ThreadId, run.RunId, Usage: completed.Data.Usage?.Models
                    .Select(m => new AgUiTokenUsage(m.Model, m.InputTokens, m.OutputTokens, m.InputTokens + m.OutputTokens, m.CachedInputTokens, m.ReasoningTokens)).ToList()) { Timestamp = at };
                break;
            case RunCancelled:
                foreach (var closed in CloseAll(at)) yield return closed;
                yield return new AgUiRunFinished(run.ThreadId, run.RunId, new AgUiOutcome("cancelled")) { Timestamp = at };
                break;
            case RunFailed failed:
                foreach (var closed in CloseAll(at)) yield return closed;
                yield return new AgUiRunError(failed.Data.Message, failed.Data.Reason) { Timestamp = at };
                break;
        }
    }

    private IEnumerable<AgUiEvent> CloseMessages(string? agent, long at)
    {
        foreach (var (messageId, _) in _openMessages.Where(m => agent is null || m.Value == agent).ToList())
        {
            _openMessages.Remove(messageId);
            yield return new AgUiTextMessageEnd(messageId) { Timestamp = at };
        }
    }

    /// <summary>A run closes what it opened before its terminal event; this only guards the protocol should one be left open.</summary>
    private IEnumerable<AgUiEvent> CloseAll(long at)
    {
        foreach (var ended in CloseMessages(null, at)) yield return ended;
        for (var i = _steps.Count - 1; i >= 0; i--) yield return new AgUiStepFinished(_steps[i]) { Timestamp = at };
        _steps.Clear();
    }
}
