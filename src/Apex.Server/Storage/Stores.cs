using Apex.Client;

namespace Apex.Server.Storage;

// One contract per concern. Every read and write of a user's data names the owner in the query itself:
// another user's id behaves exactly like a missing one. A part of the server takes only the stores it needs.

/// <summary>Accounts, sessions, the signing key and single-use socket tickets.</summary>
internal interface IAccountStore
{
    Task<bool> CreateUserAsync(UserRecord user, CancellationToken cancellationToken);
    Task<UserRecord?> FindUserByEmailAsync(string normalizedEmail, CancellationToken cancellationToken);
    Task<UserRecord?> GetUserAsync(string userId, CancellationToken cancellationToken);
    /// <summary>
    /// Counts a sign-in attempt before its password is checked; false when the account is locked or
    /// <paramref name="maxFailures"/> attempts are already counted (failed, or being checked right now).
    /// </summary>
    Task<bool> ReserveLoginAttemptAsync(string userId, int maxFailures, DateTimeOffset now, CancellationToken cancellationToken);
    /// <summary>The reserved attempt failed: locks the account when it was the last one allowed.</summary>
    Task RecordLoginFailureAsync(string userId, int maxFailures, DateTimeOffset lockoutUntil, CancellationToken cancellationToken);
    Task ResetLoginFailuresAsync(string userId, CancellationToken cancellationToken);
    Task CreateSessionAsync(SessionRecord session, CancellationToken cancellationToken);
    Task<SessionRecord?> GetSessionAsync(string userId, string sessionId, CancellationToken cancellationToken);
    /// <summary>The session and its user's current tier, in one read (every authenticated request makes it).</summary>
    Task<SessionOwner?> GetSessionOwnerAsync(string userId, string sessionId, CancellationToken cancellationToken);
    Task<RefreshOutcome> RotateRefreshTokenAsync(string oldHash, string newHash, DateTimeOffset newExpiry, DateTimeOffset now, CancellationToken cancellationToken);
    /// <summary>Revokes a session; every node's open streams of it hear of it (<see cref="StoreSignals.SessionRevoked"/>).</summary>
    Task<bool> RevokeSessionAsync(string userId, string sessionId, DateTimeOffset now, CancellationToken cancellationToken);
    /// <summary>Creates the key and its session; false when the user already has <paramref name="maxKeysPerUser"/> keys.</summary>
    Task<bool> CreateApiKeyAsync(ApiKeyRecord key, string secretHash, int maxKeysPerUser, CancellationToken cancellationToken);
    Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(string userId, CancellationToken cancellationToken);
    /// <summary>Deletes the key and revokes its session.</summary>
    Task<bool> DeleteApiKeyAsync(string userId, string keyId, DateTimeOffset now, CancellationToken cancellationToken);
    /// <summary>The live (unexpired, unrevoked) key with this secret hash.</summary>
    Task<ApiKeyOwner?> FindApiKeyAsync(string secretHash, DateTimeOffset now, CancellationToken cancellationToken);
    /// <summary>Sets the key's last use when the previous one is older than <paramref name="every"/>; true when it did.</summary>
    Task<bool> TouchApiKeyAsync(string userId, string keyId, DateTimeOffset now, TimeSpan every, CancellationToken cancellationToken);
    Task AddSecurityEventAsync(SecurityEventRecord record, CancellationToken cancellationToken);
    /// <summary>Admin: accounts whose email contains <paramref name="emailContains"/>, by id.</summary>
    Task<IReadOnlyList<UserRecord>> ListUsersAsync(string? emailContains, int limit, string? afterId, CancellationToken cancellationToken);
    /// <summary>Admin: changes an account; null when there is no such account.</summary>
    Task<UserRecord?> UpdateUserAsync(string userId, UserChange change, CancellationToken cancellationToken);
    /// <summary>Gives the accounts with these (normalized) emails the role; the number changed.</summary>
    Task<int> GrantRoleAsync(IReadOnlyCollection<string> normalizedEmails, string role, CancellationToken cancellationToken);
    /// <summary>Admin: revokes every session of the account (API keys included); the revoked session ids.</summary>
    Task<IReadOnlyList<string>> RevokeUserSessionsAsync(string userId, DateTimeOffset now, CancellationToken cancellationToken);
    /// <summary>Admin: the audit trail, optionally of one account or one kind, newest first.</summary>
    Task<IReadOnlyList<SecurityEventRecord>> ListAuditAsync(string? userId, string? kind, int limit, string? beforeId, CancellationToken cancellationToken);
    Task<int> PurgeSecurityEventsAsync(DateTimeOffset before, CancellationToken cancellationToken);
    /// <summary>Deletes sessions that expired or were revoked before <paramref name="before"/> (with their keys); the number deleted.</summary>
    Task<int> PurgeSessionsAsync(DateTimeOffset before, CancellationToken cancellationToken);
    /// <summary>The user's security events, newest first, before <paramref name="beforeId"/>.</summary>
    Task<IReadOnlyList<SecurityEventRecord>> ListSecurityEventsAsync(string userId, int limit, string? beforeId, CancellationToken cancellationToken);
    Task<string> GetOrCreateSigningKeyAsync(string candidateSecret, DateTimeOffset now, CancellationToken cancellationToken);
    Task CreateTicketAsync(string ticketHash, string userId, string sessionId, DateTimeOffset expiresAt, CancellationToken cancellationToken);
    Task<(string UserId, string SessionId)?> ConsumeTicketAsync(string ticketHash, DateTimeOffset now, CancellationToken cancellationToken);
}

/// <summary>Threads and their messages.</summary>
internal interface IThreadStore
{
    /// <summary>Creates the thread; false when the user already has <paramref name="maxThreadsPerUser"/> threads.</summary>
    Task<bool> CreateThreadAsync(ThreadRecord thread, int maxThreadsPerUser, CancellationToken cancellationToken);
    Task<ThreadRecord?> GetThreadAsync(string userId, string threadId, CancellationToken cancellationToken);
    Task<IReadOnlyList<ThreadRecord>> ListThreadsAsync(string userId, int limit, string? afterId, CancellationToken cancellationToken);
    Task<ThreadRecord?> UpdateThreadAsync(string userId, string threadId, string? title, string? strategy, DateTimeOffset now, CancellationToken cancellationToken);
    Task<bool> DeleteThreadAsync(string userId, string threadId, CancellationToken cancellationToken);
    Task<IReadOnlyList<MessageRecord>> ListMessagesAsync(string userId, string threadId, int limit, string? afterId, CancellationToken cancellationToken);
    Task<IReadOnlyList<MessageRecord>> RecentMessagesAsync(string userId, string threadId, int count, CancellationToken cancellationToken);
    Task<MessageRecord?> GetMessageAsync(string userId, string messageId, CancellationToken cancellationToken);
    /// <summary>
    /// The history a run of <paramref name="messageId"/> sees: the thread's last <paramref name="count"/> messages other than
    /// it and the user messages sent after it (queued behind it), in id order.
    /// </summary>
    Task<IReadOnlyList<MessageRecord>> HistoryForAsync(string userId, string threadId, string messageId, int count, CancellationToken cancellationToken);
}

/// <summary>Runs: submission with the thread's queue strategy, claims, leases, cancellation requests, take-over of a lost node's runs.</summary>
internal interface IRunStore
{
    /// <summary>
    /// Queues a run and its message, and appends the run's first event (made from the run's queue position) in the
    /// same transaction; refuses per the run's strategy and the queue limit.
    /// </summary>
    Task<SubmitResult> SubmitRunAsync(MessageRecord message, RunRecord run, Func<int, ApexEvent> queuedEvent, int maxPending, CancellationToken cancellationToken);
    Task<RunRecord?> GetRunAsync(string userId, string runId, CancellationToken cancellationToken);
    Task<IReadOnlyList<RunRecord>> ListRunsAsync(string userId, string threadId, int limit, string? afterId, CancellationToken cancellationToken);
    /// <summary>The thread's queued and running runs, oldest first.</summary>
    Task<IReadOnlyList<RunRecord>> ListActiveRunsAsync(string userId, string threadId, CancellationToken cancellationToken);
    Task<RunRecord?> ClaimNextRunAsync(string nodeId, int maxActivePerUser, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken);
    Task<IReadOnlyList<string>> RenewLeasesAsync(string nodeId, IReadOnlyCollection<string> runIds, DateTimeOffset leaseUntil, CancellationToken cancellationToken);
    /// <summary>Stores a run's answer (its agents' results are their <c>agent_completed</c> events'; a run read back carries them).</summary>
    Task SaveAnswerAsync(MessageRecord answer, CancellationToken cancellationToken);
    Task<bool> RequestCancelAsync(string userId, string runId, string reason, CancellationToken cancellationToken);
    /// <summary>Takes a running run over for recovery: only one node wins, and only once its lease expired (unless <paramref name="ignoreLease"/>).</summary>
    Task<bool> TryTakeOverRunAsync(string runId, string nodeId, DateTimeOffset now, DateTimeOffset leaseUntil, bool ignoreLease, CancellationToken cancellationToken);
    /// <summary>
    /// Admin: runs of every user in one status, oldest first; with <paramref name="stuckAt"/>, only running runs whose lease
    /// ran out before it (the stuck-run view). Across users by design.
    /// </summary>
    Task<IReadOnlyList<RunRecord>> ListRunsByStatusAsync(string status, DateTimeOffset? stuckAt, int limit, CancellationToken cancellationToken);
    /// <summary>Admin: a run of any user.</summary>
    Task<RunRecord?> FindRunAsync(string runId, CancellationToken cancellationToken);
    Task<IReadOnlyList<RunRecord>> FindOrphanedRunsAsync(DateTimeOffset leaseExpiredBefore, bool all, CancellationToken cancellationToken);
}

/// <summary>The event log of every thread.</summary>
internal interface IEventStore
{
    /// <summary>
    /// Appends events, each with the next seq of its thread; a <c>tool_completed</c> also adds its row to the user's tool usage log. A terminal event also ends its run, and only if the run is in
    /// <see cref="EventAppend.ExpectedRunStatus"/>; otherwise it is dropped, which is what keeps one terminal event per run.
    /// Returns the events stored, stamped with their seq.
    /// </summary>
    Task<IReadOnlyList<ApexEvent>> AppendEventsAsync(IReadOnlyList<EventAppend> events, CancellationToken cancellationToken);
    Task<IReadOnlyList<ApexEvent>> ReadEventsAsync(string userId, string threadId, long afterSeq, int limit, CancellationToken cancellationToken);
    Task<IReadOnlyList<ApexEvent>> ReadRunEventsAsync(string userId, string runId, CancellationToken cancellationToken);
    Task<int> DeleteEventsOlderThanAsync(DateTimeOffset cutoff, CancellationToken cancellationToken);
}

/// <summary>
/// The user's workload data (uploaded LLM calls) and the figures computed over it. Every read takes a
/// <see cref="WorkloadFilter"/> (<see cref="WorkloadFilter.None"/> for all of the user's calls).
/// </summary>
internal interface IWorkloadStore
{
    /// <summary>Totals, and the distinct models, providers, features and teams of the calls the filter selects.</summary>
    Task<WorkloadSummary> GetWorkloadSummaryAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken);
    /// <summary>
    /// Opens a staging batch for an upload, unless another upload of the user is staging (its lease not run out).
    /// An upload is then written with <see cref="StageWorkloadCallsAsync"/> chunk by chunk (each its own short transaction) and
    /// made visible with <see cref="CommitUploadAsync"/> in one small one; until then no query sees its rows.
    /// </summary>
    Task<UploadStart> BeginUploadAsync(string userId, string batchId, DateTimeOffset now, DateTimeOffset leaseUntil, CancellationToken cancellationToken);
    /// <summary>Writes one chunk of a staging batch and renews its lease; false (nothing written) if the batch is no longer staging.</summary>
    Task<bool> StageWorkloadCallsAsync(string userId, string batchId, IReadOnlyList<WorkloadCall> calls, DateTimeOffset leaseUntil, CancellationToken cancellationToken);
    /// <summary>
    /// Makes a staging batch visible, hiding the user's earlier batches in the same transaction when
    /// <paramref name="replaceExisting"/>; refuses (and aborts the batch) if the user would then hold more than <paramref name="maxRowsPerUser"/> rows.
    /// </summary>
    Task<UploadCommit> CommitUploadAsync(string userId, string batchId, bool replaceExisting, long maxRowsPerUser, CancellationToken cancellationToken);
    /// <summary>Marks a staging batch aborted: its rows are never visible, and <see cref="PurgeWorkloadAsync"/> deletes them.</summary>
    Task AbortUploadAsync(string userId, string batchId, CancellationToken cancellationToken);
    /// <summary>Deletes the rows of the user's aborted and replaced batches, <paramref name="chunkRows"/> per transaction; the number deleted.</summary>
    Task<long> PurgeWorkloadAsync(string userId, int chunkRows, CancellationToken cancellationToken);
    /// <summary>Hides all of the user's stored data in one statement, then deletes it chunk by chunk; the number of rows deleted.</summary>
    Task<long> DeleteWorkloadAsync(string userId, int chunkRows, CancellationToken cancellationToken);
    Task<IReadOnlyList<ModelStats>> GetModelStatsAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken);
    /// <summary>Cost per group; <paramref name="groupBy"/> is model, day, feature or team.</summary>
    Task<IReadOnlyList<CostGroup>> GetCostBreakdownAsync(string userId, string groupBy, WorkloadFilter filter, CancellationToken cancellationToken);
    Task<IReadOnlyDictionary<string, double[]>> GetLatenciesByModelAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken);
    Task<IReadOnlyList<(string Model, string Status, long Calls)>> GetErrorCountsAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken);
    Task<IReadOnlyList<RepeatedPrompt>> GetRepeatedPromptsAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken);
    Task<IReadOnlyList<HourlyCost>> GetHourlyCostAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken);
}

/// <summary>What the user's runs used: model tokens and cost, tool calls.</summary>
internal interface IUsageStore
{
    /// <summary>Stores what a run's model calls used, one row per agent and model.</summary>
    Task RecordModelUsageAsync(IReadOnlyList<ModelUsageRecord> rows, CancellationToken cancellationToken);
    Task<IReadOnlyList<DailyModelUsage>> ModelUsageByDayAsync(string userId, DateTimeOffset from, CancellationToken cancellationToken);
    Task<IReadOnlyList<DailyToolUsage>> ToolUsageByDayAsync(string userId, DateTimeOffset from, CancellationToken cancellationToken);
    Task<IReadOnlyList<ToolUsageRecord>> ListToolUsageAsync(string userId, int limit, string? beforeId, CancellationToken cancellationToken);
    /// <summary>The user's tokens (input + output) and cost since <paramref name="from"/>: what a budget is checked against.</summary>
    Task<UsageTotal> TotalSinceAsync(string userId, DateTimeOffset from, CancellationToken cancellationToken);
    /// <summary>Admin: tokens and cost per user since <paramref name="from"/>, biggest spenders first. Across users by design.</summary>
    Task<IReadOnlyList<UserUsageTotal>> TotalsByUserAsync(DateTimeOffset from, int limit, CancellationToken cancellationToken);
}

/// <summary>
/// Users' agent and team definitions, versioned. A user sees their own and the shared ones (published by admins); every
/// read names the user in the query, and another user's private definition behaves exactly like a missing one.
/// </summary>
internal interface IAgentStore
{
    /// <summary>Creates version 1; refused when the user already has <paramref name="maxPerUser"/> definitions or one of this name.</summary>
    Task<AgentWriteOutcome> CreateAsync(AgentRecord record, int maxPerUser, CancellationToken cancellationToken);
    /// <summary>The latest version of one of the user's own or a shared definition of this kind.</summary>
    Task<AgentRecord?> GetAsync(string userId, string kind, string id, CancellationToken cancellationToken);
    /// <summary>An agent or team by id, else by name (the user's own before a shared one): what a message names.</summary>
    Task<AgentRecord?> FindAsync(string userId, string idOrName, CancellationToken cancellationToken);
    /// <summary>One version, even of a definition deleted since (a queued run still runs what it named).</summary>
    Task<AgentRecord?> GetVersionAsync(string userId, string id, int version, CancellationToken cancellationToken);
    Task<IReadOnlyList<AgentRecord>> ListAsync(string userId, string kind, CancellationToken cancellationToken);
    /// <summary>Writes a new version; a shared definition, or making one shared, needs <paramref name="isAdmin"/>.</summary>
    Task<(AgentWriteOutcome Outcome, AgentRecord? Saved)> UpdateAsync(string userId, bool isAdmin, string kind, string id, string name, bool shared, string definition,
        DateTimeOffset now, CancellationToken cancellationToken);
    Task<AgentWriteOutcome> DeleteAsync(string userId, bool isAdmin, string kind, string id, CancellationToken cancellationToken);
}

/// <summary>
/// Tool calls that wait for a person's approval, and the runs that wait with them. A waiting run holds no worker and no
/// lease: its checkpoint is stored with it, and an answer (or the timeout, or a cancellation) queues it again for any node
/// to resume. Every read and write names the owner in the query; the expiry sweep is across users by design.
/// </summary>
internal interface IApprovalStore
{
    /// <summary>
    /// Parks the running run, in one transaction: the approval is stored, the run gets its checkpoint and becomes <c>waiting</c>
    /// (holding no lease), and <paramref name="requested"/> (its <c>approval_requested</c>) is appended. A run whose cancellation was
    /// requested meanwhile is queued instead, its approval <c>cancelled</c>, so a worker ends it. Null when this node no longer holds the run.
    /// </summary>
    Task<ParkedRun?> ParkAsync(ApprovalRecord approval, string nodeId, string checkpoint, Apex.Client.ApexEvent requested, CancellationToken cancellationToken);
    Task<ApprovalRecord?> GetAsync(string userId, string runId, string callId, CancellationToken cancellationToken);
    /// <summary>The run's approvals, oldest first.</summary>
    Task<IReadOnlyList<ApprovalRecord>> ListAsync(string userId, string runId, CancellationToken cancellationToken);
    /// <summary>Answers a pending approval and queues its waiting run again, in one transaction.</summary>
    Task<ApprovalDecision> DecideAsync(string userId, string runId, string callId, bool approved, string? editedArguments, string? reason, string decidedBy,
        DateTimeOffset now, CancellationToken cancellationToken);
    /// <summary>
    /// Cancels a run parked with a checkpoint (waiting, or queued to resume): its pending approval ends <c>cancelled</c> and the run is
    /// queued with its cancellation requested, so a worker ends it honestly (every agent it opened closed). False when it is neither.
    /// </summary>
    Task<bool> CancelParkedAsync(string userId, string runId, string reason, DateTimeOffset now, CancellationToken cancellationToken);
    /// <summary>Ends the pending approvals whose time ran out (<c>expired</c>) and queues their runs again; the number expired.</summary>
    Task<int> ExpireAsync(DateTimeOffset now, CancellationToken cancellationToken);
}
