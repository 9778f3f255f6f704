using System.Text.Json;
using System.Text.Json.Serialization;

namespace Apex.Client;

// The AG-UI protocol (https://docs.ag-ui.com, @ag-ui/core 1.0) at POST /api/agui. Its wire names are camelCase and its event
// types SCREAMING_SNAKE, unlike Apex's own snake_case, so every name is spelled out here for the one serializer context.

/// <summary>Body of <c>POST /api/agui</c>: AG-UI's <c>RunAgentInput</c>.</summary>
public sealed record AgUiRunAgentInput(
    [property: JsonPropertyName("threadId")] string? ThreadId,
    [property: JsonPropertyName("runId")] string? RunId,
    [property: JsonPropertyName("messages")] IReadOnlyList<AgUiMessage>? Messages,
    [property: JsonPropertyName("tools")] JsonElement? Tools = null,
    [property: JsonPropertyName("context")] IReadOnlyList<AgUiContext>? Context = null,
    [property: JsonPropertyName("state")] JsonElement? State = null,
    [property: JsonPropertyName("forwardedProps")] JsonElement? ForwardedProps = null);

/// <summary>A message of an AG-UI conversation; <c>Content</c> is a string or an array of parts (only text parts are read).</summary>
public sealed record AgUiMessage(
    [property: JsonPropertyName("id")] string? Id,
    [property: JsonPropertyName("role")] string Role,
    [property: JsonPropertyName("content")] JsonElement? Content = null);

/// <summary>A piece of context an AG-UI client passes to the agent.</summary>
public sealed record AgUiContext(
    [property: JsonPropertyName("description")] string Description,
    [property: JsonPropertyName("value")] string Value);

/// <summary>One AG-UI event, written as <c>data: {json}</c> on the SSE stream of <c>POST /api/agui</c>.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(AgUiRunStarted), "RUN_STARTED")]
[JsonDerivedType(typeof(AgUiRunFinished), "RUN_FINISHED")]
[JsonDerivedType(typeof(AgUiRunError), "RUN_ERROR")]
[JsonDerivedType(typeof(AgUiStepStarted), "STEP_STARTED")]
[JsonDerivedType(typeof(AgUiStepFinished), "STEP_FINISHED")]
[JsonDerivedType(typeof(AgUiTextMessageStart), "TEXT_MESSAGE_START")]
[JsonDerivedType(typeof(AgUiTextMessageContent), "TEXT_MESSAGE_CONTENT")]
[JsonDerivedType(typeof(AgUiTextMessageEnd), "TEXT_MESSAGE_END")]
[JsonDerivedType(typeof(AgUiToolCallStart), "TOOL_CALL_START")]
[JsonDerivedType(typeof(AgUiToolCallArgs), "TOOL_CALL_ARGS")]
[JsonDerivedType(typeof(AgUiToolCallEnd), "TOOL_CALL_END")]
[JsonDerivedType(typeof(AgUiToolCallResult), "TOOL_CALL_RESULT")]
[JsonDerivedType(typeof(AgUiReasoningStart), "REASONING_START")]
[JsonDerivedType(typeof(AgUiReasoningMessageStart), "REASONING_MESSAGE_START")]
[JsonDerivedType(typeof(AgUiReasoningMessageContent), "REASONING_MESSAGE_CONTENT")]
[JsonDerivedType(typeof(AgUiReasoningMessageEnd), "REASONING_MESSAGE_END")]
[JsonDerivedType(typeof(AgUiReasoningEnd), "REASONING_END")]
[JsonDerivedType(typeof(AgUiCustom), "CUSTOM")]
public abstract record AgUiEvent
{
    /// <summary>When the Apex event behind it was stamped, in Unix milliseconds.</summary>
    [JsonPropertyName("timestamp")]
    public long? Timestamp { get; init; }
}

/// <summary><c>RUN_STARTED</c>: the Apex thread and run ids.</summary>
public sealed record AgUiRunStarted([property: JsonPropertyName("threadId")] string ThreadId, [property: JsonPropertyName("runId")] string RunId) : AgUiEvent;
/// <summary><c>RUN_FINISHED</c>: the run completed (no outcome) or was cancelled (outcome <c>cancelled</c>).</summary>
public sealed record AgUiRunFinished([property: JsonPropertyName("threadId")] string ThreadId, [property: JsonPropertyName("runId")] string RunId,
    [property: JsonPropertyName("outcome")] AgUiOutcome? Outcome = null, [property: JsonPropertyName("usage")] IReadOnlyList<AgUiTokenUsage>? Usage = null) : AgUiEvent;
/// <summary>How a run ended, when it did not simply succeed.</summary>
public sealed record AgUiOutcome([property: JsonPropertyName("type")] string Type);
/// <summary>The tokens one model used in a run, in AG-UI's accounting.</summary>
public sealed record AgUiTokenUsage([property: JsonPropertyName("model")] string Model, [property: JsonPropertyName("inputTokens")] long InputTokens,
    [property: JsonPropertyName("outputTokens")] long OutputTokens, [property: JsonPropertyName("totalTokens")] long TotalTokens,
    [property: JsonPropertyName("cachedInputTokens")] long CachedInputTokens, [property: JsonPropertyName("reasoningTokens")] long ReasoningTokens);
/// <summary><c>RUN_ERROR</c>: the run failed.</summary>
public sealed record AgUiRunError([property: JsonPropertyName("message")] string Message, [property: JsonPropertyName("code")] string? Code = null) : AgUiEvent;
/// <summary><c>STEP_STARTED</c>: an agent began.</summary>
public sealed record AgUiStepStarted([property: JsonPropertyName("stepName")] string StepName) : AgUiEvent;
/// <summary><c>STEP_FINISHED</c>: an agent ended.</summary>
public sealed record AgUiStepFinished([property: JsonPropertyName("stepName")] string StepName) : AgUiEvent;
/// <summary><c>TEXT_MESSAGE_START</c>: the answer begins.</summary>
public sealed record AgUiTextMessageStart([property: JsonPropertyName("messageId")] string MessageId, [property: JsonPropertyName("role")] string Role) : AgUiEvent;
/// <summary><c>TEXT_MESSAGE_CONTENT</c>: a non-empty piece of the answer.</summary>
public sealed record AgUiTextMessageContent([property: JsonPropertyName("messageId")] string MessageId, [property: JsonPropertyName("delta")] string Delta) : AgUiEvent;
/// <summary><c>TEXT_MESSAGE_END</c>: the answer is complete.</summary>
public sealed record AgUiTextMessageEnd([property: JsonPropertyName("messageId")] string MessageId) : AgUiEvent;
/// <summary><c>TOOL_CALL_START</c>: an agent calls a tool.</summary>
public sealed record AgUiToolCallStart([property: JsonPropertyName("toolCallId")] string ToolCallId, [property: JsonPropertyName("toolCallName")] string ToolCallName) : AgUiEvent;
/// <summary><c>TOOL_CALL_ARGS</c>: the call's arguments, as JSON text.</summary>
public sealed record AgUiToolCallArgs([property: JsonPropertyName("toolCallId")] string ToolCallId, [property: JsonPropertyName("delta")] string Delta) : AgUiEvent;
/// <summary><c>TOOL_CALL_END</c>: the call's arguments are complete.</summary>
public sealed record AgUiToolCallEnd([property: JsonPropertyName("toolCallId")] string ToolCallId) : AgUiEvent;
/// <summary><c>TOOL_CALL_RESULT</c>: what the tool returned (JSON text) or its error.</summary>
public sealed record AgUiToolCallResult([property: JsonPropertyName("messageId")] string MessageId, [property: JsonPropertyName("toolCallId")] string ToolCallId,
    [property: JsonPropertyName("content")] string Content, [property: JsonPropertyName("role")] string Role = "tool") : AgUiEvent;
/// <summary><c>REASONING_START</c>: an agent's note begins.</summary>
public sealed record AgUiReasoningStart([property: JsonPropertyName("messageId")] string MessageId) : AgUiEvent;
/// <summary><c>REASONING_MESSAGE_START</c>.</summary>
public sealed record AgUiReasoningMessageStart([property: JsonPropertyName("messageId")] string MessageId, [property: JsonPropertyName("role")] string Role = "reasoning") : AgUiEvent;
/// <summary><c>REASONING_MESSAGE_CONTENT</c>: the note's text.</summary>
public sealed record AgUiReasoningMessageContent([property: JsonPropertyName("messageId")] string MessageId, [property: JsonPropertyName("delta")] string Delta) : AgUiEvent;
/// <summary><c>REASONING_MESSAGE_END</c>.</summary>
public sealed record AgUiReasoningMessageEnd([property: JsonPropertyName("messageId")] string MessageId) : AgUiEvent;
/// <summary><c>REASONING_END</c>.</summary>
public sealed record AgUiReasoningEnd([property: JsonPropertyName("messageId")] string MessageId) : AgUiEvent;
/// <summary><c>CUSTOM</c>: an Apex envelope as it is, named <c>apex.&lt;type&gt;</c>.</summary>
public sealed record AgUiCustom([property: JsonPropertyName("name")] string Name, [property: JsonPropertyName("value")] ApexEvent Value) : AgUiEvent;
