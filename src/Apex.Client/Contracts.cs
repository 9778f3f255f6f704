using System.Text.Json;

namespace Apex.Client;

/// <summary>Body of <c>POST /api/auth/register</c>.</summary>
public sealed record RegisterRequest(string Email, string Password, string? DisplayName = null);
/// <summary>Body of <c>POST /api/auth/login</c>.</summary>
public sealed record LoginRequest(string Email, string Password);
/// <summary>Body of <c>POST /api/auth/refresh</c> and <c>/logout</c>.</summary>
public sealed record RefreshRequest(string RefreshToken);
/// <summary>Tokens issued at login and refresh.</summary>
public sealed record TokenResponse(string AccessToken, string RefreshToken, string TokenType, int ExpiresIn, UserDto User);
/// <summary>A user as the API shows it.</summary>
public sealed record UserDto(string Id, string Email, string DisplayName, string Tier, DateTimeOffset CreatedAt);
/// <summary>A single-use ticket for <c>/ws?ticket=</c>.</summary>
public sealed record WsTicketResponse(string Ticket, int ExpiresIn);
/// <summary>Body of <c>POST /api/keys</c>: a name to recognise the key by, and an optional expiry (none: until deleted).</summary>
public sealed record CreateApiKeyRequest(string Name, DateTimeOffset? ExpiresAt = null);
/// <summary>An API key as listed: its secret is never shown again, only its first characters (<c>Prefix</c>).</summary>
public sealed record ApiKeyDto(string Id, string Name, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? LastUsedAt);
/// <summary>A new API key: <c>Key</c> is the secret, shown this once; send it as <c>Authorization: Bearer</c>.</summary>
public sealed record CreatedApiKeyDto(string Id, string Name, string Key, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt);
/// <summary>
/// Something that happened to the account's credentials: <c>login</c>, <c>login_failed</c>, <c>login_locked</c>, <c>logout</c>,
/// <c>refresh_token_reused</c>, <c>api_key_created</c>, <c>api_key_used</c>, <c>api_key_deleted</c>.
/// </summary>
public sealed record SecurityEventDto(string Id, string Kind, DateTimeOffset At, string? Address, string? Detail);

/// <summary>Body of <c>POST /api/threads</c>.</summary>
public sealed record CreateThreadRequest(string? Title = null, string? Strategy = null);
/// <summary>Body of <c>PATCH /api/threads/{id}</c>.</summary>
public sealed record UpdateThreadRequest(string? Title = null, string? Strategy = null);
/// <summary>A thread.</summary>
public sealed record ThreadDto(string Id, string Title, string Strategy, long LastSeq, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);
/// <summary>A stored message; role is user or assistant.</summary>
public sealed record MessageDto(string Id, string ThreadId, string? RunId, string Role, string Content, DateTimeOffset CreatedAt);
/// <summary>A run; status is queued, running, waiting (for a tool approval), completed, failed or cancelled. <c>Results</c> holds each agent's structured result once it ended.</summary>
public sealed record RunDto(string Id, string ThreadId, string Status, string Strategy, string MessageId, DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt, DateTimeOffset? EndedAt, string? Error, JsonElement? Results = null, string? AgentId = null, int? AgentVersion = null);
/// <summary>Body of <c>POST /api/threads/{id}/messages</c>; <c>Agent</c> names the agent or team that answers (id or name; null: the shipped team).</summary>
public sealed record SendMessageRequest(string Content, string? Strategy = null, string? Agent = null);
/// <summary>
/// A user's agent or team definition (<c>/api/agents</c>, <c>/api/teams</c>) at its latest version. <c>Mine</c>: the caller's own;
/// a shared one (published by an admin) is visible to every user. <c>Definition</c> is the JSON that was sent, without <c>shared</c>.
/// </summary>
public sealed record AgentDto(string Id, string Kind, string Name, int Version, bool Shared, bool Mine, JsonElement Definition, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);
/// <summary>Answer to a message sent over REST.</summary>
public sealed record SendMessageResponse(RunDto Run, MessageDto Message);
/// <summary>One page of a list; pass <c>NextCursor</c> as <c>cursor</c> to read on.</summary>
public sealed record Page<T>(IReadOnlyList<T> Items, string? NextCursor);

/// <summary>A client-to-server frame on <c>/ws</c>.</summary>
public sealed record ClientFrame(string Type, JsonElement? Payload = null);
/// <summary>Payload of <c>user_message</c> and <c>start_agent</c>.</summary>
public sealed record UserMessagePayload(string Content, string? ThreadId = null, string? Strategy = null, string? Agent = null);
/// <summary>Payload of <c>stop_agent</c>.</summary>
public sealed record StopAgentPayload(string RunId);
/// <summary>
/// Payload of <c>approve_tool</c> and <c>reject_tool</c>: the run and the call that waits; <c>Arguments</c> replace the model's
/// (approve only), <c>Reason</c> is what the model is told on a rejection.
/// </summary>
public sealed record ApprovalPayload(string RunId, string CallId, JsonElement? Arguments = null, string? Reason = null);
/// <summary>Body of <c>POST /api/runs/{id}/approvals/{call_id}</c>: <c>Decision</c> is approve or reject.</summary>
public sealed record ApprovalDecisionRequest(string Decision, JsonElement? Arguments = null, string? Reason = null);
/// <summary>
/// A tool call that waits or waited for approval; status is pending, approved, rejected, expired or cancelled.
/// <c>EditedArguments</c> are the approver's replacement for <c>Arguments</c>, when they changed them.
/// </summary>
public sealed record ApprovalDto(string RunId, string CallId, string ThreadId, string Agent, string Tool, JsonElement Arguments, string Status,
    JsonElement? EditedArguments, string? Reason, string? DecidedBy, DateTimeOffset RequestedAt, DateTimeOffset ExpiresAt, DateTimeOffset? DecidedAt);
/// <summary>Payload of <c>resume</c>.</summary>
public sealed record ResumePayload(string ThreadId, long AfterSeq);
/// <summary>Payload of <c>get_thread_history</c> and <c>switch_thread</c>.</summary>
public sealed record ThreadRefPayload(string ThreadId);
/// <summary>An account as the admin API shows it.</summary>
public sealed record AdminUserDto(string Id, string Email, string DisplayName, string Tier, string Role, DateTimeOffset CreatedAt, DateTimeOffset? LockoutUntil,
    int FailedLogins, long? TokenBudget, double? CostBudgetUsd);
/// <summary>
/// Body of <c>PATCH /api/admin/users/{id}</c>; absent fields are left alone. <c>Locked</c> true locks the account until
/// unlocked (and ends its sessions); <c>ClearBudget</c> returns it to its tier's budget.
/// </summary>
public sealed record AdminUserUpdate(string? Tier = null, string? Role = null, bool? Locked = null, long? TokenBudget = null, double? CostBudgetUsd = null, bool ClearBudget = false);
/// <summary>A run of any user, for the admin's run views.</summary>
public sealed record AdminRunDto(string Id, string UserId, string ThreadId, string Status, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, string? NodeId);
/// <summary>One entry of the audit trail; <c>ActorId</c> is the admin who acted, when it was not the user.</summary>
public sealed record AuditEntryDto(string Id, string UserId, string Kind, DateTimeOffset At, string? Address, string? Detail, string? ActorId);
/// <summary>One user's model usage in the admin's usage view.</summary>
public sealed record UserUsageDto(string UserId, string Email, long Calls, long Tokens, double CostUsd);
/// <summary>Answer of <c>POST /api/admin/users/{id}/revoke-sessions</c>.</summary>
public sealed record RevokedSessionsDto(int Revoked);

/// <summary>Payload of <c>reauth</c>: a fresh access token (or API key) of the same user, before the socket's credential expires.</summary>
public sealed record ReauthPayload(string Token);

/// <summary>The strategies for a message sent to a thread that is busy.</summary>
public static class QueueStrategies
{
    /// <summary>Wait behind the active run (default).</summary>
    public const string Enqueue = "enqueue";
    /// <summary>Refuse with <c>thread_busy</c>.</summary>
    public const string Reject = "reject";
    /// <summary>Cancel the active run, then start.</summary>
    public const string Interrupt = "interrupt";

    /// <summary>Whether a value names a strategy.</summary>
    public static bool IsValid(string? value) => value is Enqueue or Reject or Interrupt;
}

/// <summary>One rejected row of an upload.</summary>
public sealed record RowErrorDto(int Line, string Reason);
/// <summary>The validation report of a workload upload.</summary>
public sealed record WorkloadReport(string BatchId, string Format, int RowsAccepted, int RowsRejected, IReadOnlyList<RowErrorDto> Errors,
    int RowsPricedFromTable, IReadOnlyList<string> UnpricedModels);
/// <summary>
/// A refused upload's ProblemDetails (400, 413 or 422): its title and detail and, when the file was read, the validation
/// report (nothing was imported).
/// </summary>
public sealed record WorkloadProblem(string? Title, int? Status, string? Detail, WorkloadReport? Report);
/// <summary>What became of a workload upload: <see cref="Imported"/> or <see cref="Refused"/>.</summary>
public abstract record WorkloadUploadResult
{
    private WorkloadUploadResult() { }

    /// <summary>The rows that passed were stored; <c>Report</c> says which were rejected and why.</summary>
    public sealed record Imported(WorkloadReport Report) : WorkloadUploadResult;

    /// <summary>The server refused the file and imported nothing.</summary>
    public sealed record Refused(WorkloadProblem Problem) : WorkloadUploadResult;
}
/// <summary>Body of <c>POST /api/workloads/sample</c>.</summary>
public sealed record SampleWorkloadRequest(int? Days = null, int? CallsPerDay = null, int? Seed = null);
/// <summary>One entry of the user's tool usage log.</summary>
public sealed record ToolUsageDto(string Id, string RunId, string Tool, string Status, double DurationMs, DateTimeOffset CreatedAt);
/// <summary>What the user's stored workload data holds.</summary>
public sealed record WorkloadSummaryDto(long Calls, long Errors, long PromptTokens, long CompletionTokens, double TotalCostUsd,
    DateTimeOffset? FirstCall, DateTimeOffset? LastCall, IReadOnlyList<string> Models);

/// <summary>
/// Answer of <c>GET /api/usage</c>: the user's plan tier and, over the last <c>Days</c> days (UTC), the model tokens and
/// cost per day and model, the totals per model, and the tool calls per day and tool. Cost is null for a model without a price.
/// </summary>
public sealed record UsageDto(string Tier, int Days, long InputTokens, long OutputTokens, double? CostUsd, IReadOnlyList<DailyModelUsageDto> ByDay,
    IReadOnlyList<ModelUsageFigure> ByModel, IReadOnlyList<DailyToolUsageDto> ToolCalls, BudgetDto? Budget = null);
/// <summary>
/// The user's monthly model budget (null limits: unlimited), what this UTC month used (tokens are input plus output), what
/// is left, and when it renews. A run whose next model call the budget no longer covers ends <c>run_failed</c> <c>budget_exceeded</c>.
/// </summary>
public sealed record BudgetDto(long? MonthlyTokens, double? MonthlyCostUsd, long TokensUsed, double CostUsedUsd, long? TokensRemaining, double? CostRemainingUsd, DateTimeOffset ResetsAt);
/// <summary>One day of one model in <see cref="UsageDto"/>.</summary>
public sealed record DailyModelUsageDto(string Day, string Model, int Calls, long InputTokens, long OutputTokens, long CachedInputTokens, long ReasoningTokens, double? CostUsd);
/// <summary>One day of one tool in <see cref="UsageDto"/>; <c>Failed</c> counts calls that did not end ok.</summary>
public sealed record DailyToolUsageDto(string Day, string Tool, long Calls, long Failed);

