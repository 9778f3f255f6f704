using System.Text.Json;
using System.Text.Json.Serialization;

namespace Apex.Client;

/// <summary>The wire names of every event and control frame the server sends.</summary>
public static class EventTypes
{
    /// <summary>A run was accepted and waits for its turn.</summary>
    public const string RunQueued = "run_queued";
    /// <summary>A run began executing.</summary>
    public const string RunStarted = "run_started";
    /// <summary>An agent began its work.</summary>
    public const string AgentStarted = "agent_started";
    /// <summary>An agent reports what it is thinking about.</summary>
    public const string AgentThinking = "agent_thinking";
    /// <summary>A tool call began.</summary>
    public const string ToolExecuting = "tool_executing";
    /// <summary>A tool call ended, with its status.</summary>
    public const string ToolCompleted = "tool_completed";
    /// <summary>A piece of the assistant's answer.</summary>
    public const string MessageDelta = "message_delta";
    /// <summary>An agent ended, with its structured result.</summary>
    public const string AgentCompleted = "agent_completed";
    /// <summary>An agent failed or timed out.</summary>
    public const string AgentError = "agent_error";
    /// <summary>A tool call waits for a person's approval; the run waits with it, holding no worker.</summary>
    public const string ApprovalRequested = "approval_requested";
    /// <summary>A waiting tool call was approved, rejected, timed out or cancelled.</summary>
    public const string ApprovalResolved = "approval_resolved";
    /// <summary>Terminal: the run completed.</summary>
    public const string RunCompleted = "run_completed";
    /// <summary>Terminal: the run failed.</summary>
    public const string RunFailed = "run_failed";
    /// <summary>Terminal: the run was cancelled.</summary>
    public const string RunCancelled = "run_cancelled";
    /// <summary>Control: the socket is registered and ready.</summary>
    public const string ConnectionEstablished = "connection_established";
    /// <summary>Control: answer to a client ping.</summary>
    public const string Pong = "pong";
    /// <summary>Control: a frame could not be handled.</summary>
    public const string Error = "error";
    /// <summary>Control: a thread's messages and runs.</summary>
    public const string ThreadHistory = "thread_history";
    /// <summary>Control: the connection now follows a thread.</summary>
    public const string ThreadFollowed = "thread_followed";
    /// <summary>Control: answer to <c>stop_agent</c>; the run's <c>run_cancelled</c> is stored on its thread.</summary>
    public const string StopAccepted = "stop_accepted";
    /// <summary>Control: answer to <c>approve_tool</c> / <c>reject_tool</c>; the run resumes and its events follow on the thread.</summary>
    public const string ApprovalAccepted = "approval_accepted";
    /// <summary>Control: answer to <c>reauth</c>; the socket now lives until the new credential's expiry.</summary>
    public const string Reauthenticated = "reauthenticated";

    /// <summary>The event types that end a run; a run has exactly one.</summary>
    public static bool IsTerminal(string type) => type is RunCompleted or RunFailed or RunCancelled;
}

/// <summary>
/// The one envelope of every event. Stored events carry a per-thread, gapless <see cref="Seq"/>;
/// control frames (errors, pongs, history) carry none.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(RunQueued), EventTypes.RunQueued)]
[JsonDerivedType(typeof(RunStarted), EventTypes.RunStarted)]
[JsonDerivedType(typeof(AgentStarted), EventTypes.AgentStarted)]
[JsonDerivedType(typeof(AgentThinking), EventTypes.AgentThinking)]
[JsonDerivedType(typeof(ToolExecuting), EventTypes.ToolExecuting)]
[JsonDerivedType(typeof(ToolCompleted), EventTypes.ToolCompleted)]
[JsonDerivedType(typeof(MessageDelta), EventTypes.MessageDelta)]
[JsonDerivedType(typeof(AgentCompleted), EventTypes.AgentCompleted)]
[JsonDerivedType(typeof(AgentError), EventTypes.AgentError)]
[JsonDerivedType(typeof(ApprovalRequested), EventTypes.ApprovalRequested)]
[JsonDerivedType(typeof(ApprovalResolved), EventTypes.ApprovalResolved)]
[JsonDerivedType(typeof(RunCompleted), EventTypes.RunCompleted)]
[JsonDerivedType(typeof(RunFailed), EventTypes.RunFailed)]
[JsonDerivedType(typeof(RunCancelled), EventTypes.RunCancelled)]
[JsonDerivedType(typeof(ConnectionEstablished), EventTypes.ConnectionEstablished)]
[JsonDerivedType(typeof(Pong), EventTypes.Pong)]
[JsonDerivedType(typeof(ErrorFrame), EventTypes.Error)]
[JsonDerivedType(typeof(ThreadHistory), EventTypes.ThreadHistory)]
[JsonDerivedType(typeof(ThreadFollowed), EventTypes.ThreadFollowed)]
[JsonDerivedType(typeof(StopAccepted), EventTypes.StopAccepted)]
[JsonDerivedType(typeof(Reauthenticated), EventTypes.Reauthenticated)]
[JsonDerivedType(typeof(ApprovalAccepted), EventTypes.ApprovalAccepted)]
public abstract record ApexEvent
{
    /// <summary>The wire type, also written as the <c>type</c> discriminator.</summary>
    [JsonIgnore]
    public string Type => WireType;

    /// <summary>The wire type of the concrete event.</summary>
    protected abstract string WireType { get; }

    /// <summary>Unique, sortable id of a stored event.</summary>
    [JsonPropertyOrder(-9)]
    public string? EventId { get; init; }

    /// <summary>Gapless, strictly increasing per thread; 0 for control frames.</summary>
    [JsonPropertyOrder(-8)]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public long Seq { get; init; }

    /// <summary>The thread the event belongs to.</summary>
    [JsonPropertyOrder(-7)]
    public string? ThreadId { get; init; }

    /// <summary>The run the event belongs to.</summary>
    [JsonPropertyOrder(-6)]
    public string? RunId { get; init; }

    /// <summary>The owner of the thread.</summary>
    [JsonPropertyOrder(-5)]
    public string? UserId { get; init; }

    /// <summary>The agent that emitted the event, if any.</summary>
    [JsonPropertyOrder(-4)]
    public string? AgentName { get; init; }

    /// <summary>When the event was stamped (UTC).</summary>
    [JsonPropertyOrder(-3)]
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>Whether this event ends its run.</summary>
    [JsonIgnore]
    public bool IsTerminal => EventTypes.IsTerminal(Type);
}

/// <summary>A run was accepted.</summary>
public sealed record RunQueued(RunQueuedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.RunQueued; }
/// <summary>A run began executing.</summary>
public sealed record RunStarted(RunStartedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.RunStarted; }
/// <summary>An agent began.</summary>
public sealed record AgentStarted(AgentStartedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.AgentStarted; }
/// <summary>An agent's progress note.</summary>
public sealed record AgentThinking(AgentThinkingData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.AgentThinking; }
/// <summary>A tool call began.</summary>
public sealed record ToolExecuting(ToolExecutingData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.ToolExecuting; }
/// <summary>A tool call ended.</summary>
public sealed record ToolCompleted(ToolCompletedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.ToolCompleted; }
/// <summary>A piece of the answer.</summary>
public sealed record MessageDelta(MessageDeltaData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.MessageDelta; }
/// <summary>An agent ended.</summary>
public sealed record AgentCompleted(AgentCompletedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.AgentCompleted; }
/// <summary>An agent failed.</summary>
public sealed record AgentError(AgentErrorData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.AgentError; }
/// <summary>A tool call waits for approval.</summary>
public sealed record ApprovalRequested(ApprovalRequestedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.ApprovalRequested; }
/// <summary>A waiting tool call was answered, timed out or cancelled.</summary>
public sealed record ApprovalResolved(ApprovalResolvedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.ApprovalResolved; }
/// <summary>Terminal: completed.</summary>
public sealed record RunCompleted(RunCompletedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.RunCompleted; }
/// <summary>Terminal: failed.</summary>
public sealed record RunFailed(RunFailedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.RunFailed; }
/// <summary>Terminal: cancelled.</summary>
public sealed record RunCancelled(RunCancelledData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.RunCancelled; }
/// <summary>Control: the socket is ready.</summary>
public sealed record ConnectionEstablished(ConnectionEstablishedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.ConnectionEstablished; }
/// <summary>Control: answer to ping.</summary>
public sealed record Pong(PongData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.Pong; }
/// <summary>Control: a frame could not be handled.</summary>
public sealed record ErrorFrame(ErrorData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.Error; }
/// <summary>Control: a thread's history.</summary>
public sealed record ThreadHistory(ThreadHistoryData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.ThreadHistory; }
/// <summary>Control: the connection follows a thread from a cursor.</summary>
public sealed record ThreadFollowed(ThreadFollowedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.ThreadFollowed; }
/// <summary>Control: a <c>stop_agent</c> was accepted.</summary>
public sealed record StopAccepted(StopAcceptedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.StopAccepted; }

/// <summary>Control: a <c>reauth</c> was accepted.</summary>
public sealed record Reauthenticated(ReauthenticatedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.Reauthenticated; }

/// <summary>Control: an <c>approve_tool</c> or <c>reject_tool</c> was stored.</summary>
public sealed record ApprovalAccepted(ApprovalAcceptedData Data) : ApexEvent { /// <inheritdoc/>
    protected override string WireType => EventTypes.ApprovalAccepted; }

/// <summary>Payload of <c>run_queued</c>.</summary>
public sealed record RunQueuedData(string MessageId, string Strategy, int Position);
/// <summary>Payload of <c>run_started</c>.</summary>
public sealed record RunStartedData(string NodeId);
/// <summary>Payload of <c>agent_started</c>.</summary>
public sealed record AgentStartedData(string Agent, int Depth, string? Parent);
/// <summary>Payload of <c>agent_thinking</c>.</summary>
public sealed record AgentThinkingData(string Text);
/// <summary>Payload of <c>tool_executing</c>.</summary>
public sealed record ToolExecutingData(string CallId, string Tool, JsonElement Arguments);
/// <summary>Payload of <c>tool_completed</c>; status is ok, error, denied, invalid, timeout, cancelled or rejected (a person said no, or the approval timed out).</summary>
public sealed record ToolCompletedData(string CallId, string Tool, string Status, double DurationMs, JsonElement? Result, string? Error);
/// <summary>
/// Payload of <c>approval_requested</c>: the call that waits (its id, tool and the model's arguments), who may answer it (user ids:
/// the run's owner) and when it times out (then it is rejected).
/// </summary>
public sealed record ApprovalRequestedData(string CallId, string Tool, JsonElement Arguments, IReadOnlyList<string> Approvers, DateTimeOffset ExpiresAt);
/// <summary>
/// Payload of <c>approval_resolved</c>; status is approved, rejected, expired or cancelled. <c>Arguments</c> are the approver's
/// edited ones (null: the model's ran); <c>DecidedBy</c> the user who answered (null when it timed out or the run was cancelled).
/// </summary>
public sealed record ApprovalResolvedData(string CallId, string Tool, string Status, string? DecidedBy = null, string? Reason = null, JsonElement? Arguments = null);
/// <summary>Payload of <c>approval_accepted</c>: the answer was stored; <c>Status</c> is approved or rejected.</summary>
public sealed record ApprovalAcceptedData(string RunId, string CallId, string Status);
/// <summary>Payload of <c>message_delta</c>.</summary>
public sealed record MessageDeltaData(string MessageId, string Delta);
/// <summary>Payload of <c>agent_completed</c>; status is ok, error or cancelled.</summary>
public sealed record AgentCompletedData(string Agent, string Status, double DurationMs, JsonElement? Result);
/// <summary>Payload of <c>agent_error</c>.</summary>
public sealed record AgentErrorData(string Agent, string Code, string Message);
/// <summary>Payload of <c>run_completed</c>.</summary>
/// <remarks>
/// <c>Usage</c> is what the run's model calls used (null when no model call reported usage); <c>Note</c> says when the
/// answer is not the model's, e.g. the built-in report writer stood in because the model failed.
/// </remarks>
public sealed record RunCompletedData(string MessageId, double DurationMs, RunUsageSummary? Usage = null, string? Note = null);
/// <summary>The tokens and cost of a run, in all and per model; cost is null where a model has no price.</summary>
public sealed record RunUsageSummary(long InputTokens, long OutputTokens, long CachedInputTokens, long ReasoningTokens, double? CostUsd, IReadOnlyList<ModelUsageFigure> Models);
/// <summary>The tokens and cost of one model within a run, or within a day of a user's usage.</summary>
public sealed record ModelUsageFigure(string Model, int Calls, long InputTokens, long OutputTokens, long CachedInputTokens, long ReasoningTokens, double? CostUsd);
/// <summary>Payload of <c>run_failed</c>; reason is e.g. error, timeout, server_restart, node_lost.</summary>
public sealed record RunFailedData(string Reason, string Message);
/// <summary>Payload of <c>run_cancelled</c>.</summary>
public sealed record RunCancelledData(string Reason);
/// <summary>Payload of <c>connection_established</c>.</summary>
public sealed record ConnectionEstablishedData(string ConnectionId, string UserId, int MaxFrameBytes);
/// <summary>Payload of <c>reauthenticated</c>: when the socket must next re-authenticate (null: its API key does not expire).</summary>
public sealed record ReauthenticatedData(DateTimeOffset? ExpiresAt);
/// <summary>Payload of <c>pong</c>.</summary>
public sealed record PongData(DateTimeOffset ServerTime);
/// <summary>Payload of <c>error</c>.</summary>
public sealed record ErrorData(string Code, string Message);
/// <summary>Payload of <c>thread_history</c>.</summary>
public sealed record ThreadHistoryData(ThreadDto Thread, IReadOnlyList<MessageDto> Messages, IReadOnlyList<RunDto> Runs);
/// <summary>Payload of <c>thread_followed</c>: live events after <c>AfterSeq</c> follow.</summary>
public sealed record ThreadFollowedData(string ThreadId, long AfterSeq);
/// <summary>
/// Payload of <c>stop_accepted</c>: <c>Status</c> is <c>cancelled</c> (the run had not started, or was already cancelled: it is over)
/// or <c>cancelling</c> (the running run was told to stop wherever it executes; its <c>run_cancelled</c> follows on the thread).
/// </summary>
public sealed record StopAcceptedData(string RunId, string ThreadId, string Status);
