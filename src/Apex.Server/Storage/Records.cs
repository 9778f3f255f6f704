namespace Apex.Server.Storage;

/// <summary>An account. <c>TokenBudget</c> / <c>CostBudget</c> override the tier's monthly budget when an admin set them.</summary>
internal sealed record UserRecord(string Id, string Email, string NormalizedEmail, string PasswordHash, string DisplayName,
    string Tier, DateTimeOffset CreatedAt, int FailedLogins, DateTimeOffset? LockoutUntil, string Role = Roles.User, long? TokenBudget = null, double? CostBudget = null);

/// <summary>What an account may do beyond its own data.</summary>
internal static class Roles
{
    public const string User = "user";
    public const string Admin = "admin";

    public static bool IsValid(string? role) => role is User or Admin;
}

/// <summary>An admin's change to an account; null leaves a field as it is.</summary>
internal sealed record UserChange(string? Tier = null, string? Role = null, DateTimeOffset? LockoutUntil = null, bool Unlock = false,
    long? TokenBudget = null, double? CostBudget = null, bool ClearBudget = false);

internal sealed record SessionRecord(string Id, string UserId, string RefreshHash, DateTimeOffset CreatedAt, DateTimeOffset ExpiresAt, DateTimeOffset? RevokedAt)
{
    /// <summary>The refresh-hash column of an API key's session: never the SHA-256 hex of any token, so it cannot be refreshed.</summary>
    public const string ApiKeyMarker = "api_key:";

    /// <summary>The <c>expires_at</c> of an API key's session whose key does not expire.</summary>
    public static readonly DateTimeOffset Never = new(9999, 1, 1, 0, 0, 0, TimeSpan.Zero);

    public bool IsApiKey => RefreshHash.StartsWith(ApiKeyMarker, StringComparison.Ordinal);
}

/// <summary>
/// A program's credential. Its id is also the id of its session row, so revoking the key (deleting it) revokes that
/// session, and everything that checks or watches sessions (tokens, tickets, open sockets and SSE streams) treats keys
/// and sign-ins alike. The secret itself is stored only as a hash.
/// </summary>
internal sealed record ApiKeyRecord(string Id, string UserId, string Name, string Prefix, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, DateTimeOffset? LastUsedAt);

/// <summary>A session and its user's current tier.</summary>
internal sealed record SessionOwner(SessionRecord Session, string Tier, string Role);

/// <summary>A live API key and its user's tier, as a request authenticated with it needs them.</summary>
internal sealed record ApiKeyOwner(ApiKeyRecord Key, string Tier, string Role);

/// <summary>What became of a presented refresh token.</summary>
internal abstract record RefreshOutcome
{
    private RefreshOutcome() { }

    public sealed record Rotated(SessionRecord Session) : RefreshOutcome;

    /// <summary>A token that a rotation had replaced, presented again: its session is now revoked.</summary>
    public sealed record Reused(string UserId, string SessionId) : RefreshOutcome;

    /// <summary>Unknown, expired or revoked.</summary>
    public sealed record Unknown : RefreshOutcome;
}

/// <summary>What happened to an account's credentials, for the user's own security page (and, later, the audit trail).</summary>
/// <remarks><c>ActorId</c> is who acted when it was not the account's own user (an admin).</remarks>
internal sealed record SecurityEventRecord(string Id, string UserId, string Kind, DateTimeOffset At, string? Address, string? Detail, string? ActorId = null);

/// <summary>The kinds of <see cref="SecurityEventRecord"/>.</summary>
internal static class SecurityEventKinds
{
    public const string Login = "login";
    public const string LoginFailed = "login_failed";
    public const string LoginLocked = "login_locked";
    public const string Logout = "logout";
    public const string RefreshReuse = "refresh_token_reused";
    public const string ApiKeyCreated = "api_key_created";
    public const string ApiKeyUsed = "api_key_used";
    public const string ApiKeyDeleted = "api_key_deleted";
    public const string Register = "register";
    public const string Refresh = "refresh";
    public const string TicketUsed = "ticket_used";
    public const string TierChanged = "tier_changed";
    public const string RoleChanged = "role_changed";
    public const string Locked = "locked";
    public const string Unlocked = "unlocked";
    public const string BudgetChanged = "budget_changed";
    public const string SessionsRevoked = "sessions_revoked";
    public const string RunCancelled = "run_cancelled_by_admin";
    public const string WorkloadUploaded = "workload_uploaded";
    public const string WorkloadDeleted = "workload_deleted";
}

internal sealed record ThreadRecord(string Id, string UserId, string Title, string Strategy, long LastSeq, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

internal sealed record MessageRecord(string Id, string ThreadId, string UserId, string? RunId, string Role, string Content, DateTimeOffset CreatedAt);

internal sealed record RunRecord(string Id, string ThreadId, string UserId, string Status, string Strategy, string MessageId,
    DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt, string? Error, string? NodeId, bool CancelRequested, string? Results = null,
    string? AgentId = null, int? AgentVersion = null)
{
    /// <summary>Where a run that waited for an approval resumes (null: the run starts from the beginning).</summary>
    public string? Checkpoint { get; init; }
}

/// <summary>
/// A user's agent or team definition, one version of it. <c>Definition</c> is its JSON as validated when it was written.
/// A shared one (published by an admin) is visible to every user and changed only by admins.
/// </summary>
internal sealed record AgentRecord(string Id, string UserId, string Kind, string Name, int Version, bool Shared, string Definition, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

internal static class AgentKinds
{
    public const string Agent = "agent";
    public const string Team = "team";
}

/// <summary>What became of a write of an agent or team definition.</summary>
internal enum AgentWriteOutcome { Saved, NotFound, Forbidden, NameTaken, LimitReached }

internal static class RunStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    /// <summary>Waiting for a person to approve a tool call: stored with its checkpoint, holding no worker and no lease.</summary>
    public const string Waiting = "waiting";
    public const string Completed = "completed";
    public const string Failed = "failed";
    public const string Cancelled = "cancelled";

    public static bool IsFinished(string status) => status is Completed or Failed or Cancelled;
}

internal sealed record ModelUsageRecord(string UserId, string RunId, string Agent, string Model, int Calls, long InputTokens, long OutputTokens,
    long CachedTokens, long ReasoningTokens, double? Cost, DateTimeOffset CreatedAt);

/// <summary>One day of one model in a user's usage.</summary>
internal sealed record UsageTotal(long Tokens, double Cost);

internal sealed record UserUsageTotal(string UserId, string Email, long Calls, long Tokens, double Cost);

internal sealed record DailyModelUsage(string Day, string Model, int Calls, long InputTokens, long OutputTokens, long CachedTokens, long ReasoningTokens, double? Cost);

/// <summary>One day of one tool in a user's usage log.</summary>
internal sealed record DailyToolUsage(string Day, string Tool, long Calls, long Failed);

internal sealed record ToolUsageRecord(string Id, string UserId, string RunId, string Tool, string Status, double DurationMs, DateTimeOffset CreatedAt);

/// <summary>
/// A tool call that waits for (or waited for) a person's approval. <c>Arguments</c> are the model's, <c>EditedArguments</c> the
/// approver's replacement (JSON text) when they changed them.
/// </summary>
internal sealed record ApprovalRecord(string RunId, string CallId, string UserId, string ThreadId, string Agent, string Tool, string Arguments, string Status,
    string? EditedArguments, string? Reason, string? DecidedBy, DateTimeOffset RequestedAt, DateTimeOffset ExpiresAt, DateTimeOffset? DecidedAt);

internal static class ApprovalStatus
{
    public const string Pending = "pending";
    public const string Approved = "approved";
    public const string Rejected = "rejected";
    public const string Expired = "expired";
    /// <summary>The run was cancelled while it waited.</summary>
    public const string Cancelled = "cancelled";
}

/// <summary>A run parked for an approval: its status now (<c>waiting</c>, or <c>queued</c> when cancelled meanwhile) and its stored <c>approval_requested</c>.</summary>
internal sealed record ParkedRun(string Status, Apex.Client.ApexEvent Requested);

/// <summary>What became of a person's answer to an approval request.</summary>
internal abstract record ApprovalDecision
{
    private ApprovalDecision() { }

    /// <summary>Stored; the run is queued again and a worker resumes it.</summary>
    public sealed record Decided(ApprovalRecord Approval) : ApprovalDecision;

    /// <summary>No such approval of this user (another user's is one that does not exist).</summary>
    public sealed record NotFound : ApprovalDecision;

    /// <summary>It was already answered, expired or cancelled.</summary>
    public sealed record AlreadyDecided(ApprovalRecord Approval) : ApprovalDecision;
}

/// <summary>The outcome of submitting a message to a thread.</summary>
internal enum SubmitOutcome { Queued, ThreadBusy, QueueFull }

internal sealed record SubmitResult(SubmitOutcome Outcome, int Position, IReadOnlyList<string> ActiveRunIds, Apex.Client.ApexEvent? Queued);

internal sealed record WorkloadSummary(long Calls, long Errors, long PromptTokens, long CompletionTokens, double AvgLatencyMs, double Cost,
    DateTimeOffset? First, DateTimeOffset? Last, IReadOnlyList<string> Models)
{
    public IReadOnlyList<string> Providers { get; init; } = [];
    public IReadOnlyList<string> Features { get; init; } = [];
    public IReadOnlyList<string> Teams { get; init; } = [];
}

/// <summary>
/// Which of a user's calls a figure covers: one model, feature or team, and a time window (<c>From</c> inclusive,
/// <c>To</c> exclusive). Null parts do not filter.
/// </summary>
internal sealed record WorkloadFilter(string? Model = null, string? Feature = null, string? Team = null, DateTimeOffset? From = null, DateTimeOffset? To = null)
{
    public static readonly WorkloadFilter None = new();

    /// <summary>The time window alone: the period a monthly projection is scaled from.</summary>
    public WorkloadFilter Window => new(null, null, null, From, To);
}

/// <summary>An event to append; a terminal one names the run status it requires (queued or running).</summary>
internal sealed record EventAppend(Apex.Client.ApexEvent Event, string? ExpectedRunStatus = null);

internal sealed record WorkloadCall(string Id, string UserId, string BatchId, DateTimeOffset Timestamp, string Provider, string Model,
    long PromptTokens, long CompletionTokens, double LatencyMs, string Status, double? Cost, string? PromptHash, string? Feature, string? Team);

/// <summary>Whether an upload got its user's upload slot (one upload at a time per user).</summary>
internal abstract record UploadStart
{
    private UploadStart() { }

    /// <summary>The batch is staging; <paramref name="StoredRows"/> are the user's committed rows.</summary>
    public sealed record Started(long StoredRows) : UploadStart;

    /// <summary>Another upload of the same user is staging.</summary>
    public sealed record Busy : UploadStart;
}

/// <summary>What became of an upload's staged rows at the end.</summary>
internal abstract record UploadCommit
{
    private UploadCommit() { }

    /// <summary>Visible now, in one step; <paramref name="StoredRows"/> are the user's rows after it.</summary>
    public sealed record Committed(long StoredRows) : UploadCommit;

    /// <summary>Refused (and aborted): the user would have had more than the limit of rows.</summary>
    public sealed record OverRowLimit(long StoredRows, long Limit) : UploadCommit;

    /// <summary>The batch was no longer staging: its lease ran out and another upload took the slot.</summary>
    public sealed record Lost : UploadCommit;
}

internal sealed record ModelStats(string Model, string Provider, long Calls, long Errors, long PromptTokens, long CompletionTokens, double Cost, double AvgLatencyMs);

internal sealed record CostGroup(string Key, long Calls, double Cost);

internal sealed record RepeatedPrompt(string PromptHash, string Model, long Calls, double Cost, double FirstCallCost);

internal sealed record HourlyCost(DateTimeOffset Hour, long Calls, double Cost);
