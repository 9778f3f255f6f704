namespace Apex.Server.Execution;

/// <summary>
/// Who, where and why, for one run and each step inside it. Immutable; children get a new
/// request id and one more level of depth. Nothing per-user lives anywhere else.
/// </summary>
internal sealed record UserExecutionContext
{
    public const int MaxDepth = 10;

    private UserExecutionContext(string userId, string threadId, string runId, string requestId, string tier, DateTimeOffset createdAt,
        int depth, string? parentRequestId, string? connectionId)
    {
        UserId = userId;
        ThreadId = threadId;
        RunId = runId;
        RequestId = requestId;
        Tier = tier;
        CreatedAt = createdAt;
        Depth = depth;
        ParentRequestId = parentRequestId;
        ConnectionId = connectionId;
    }

    public string UserId { get; }
    public string ThreadId { get; }
    public string RunId { get; }
    public string RequestId { get; }
    public string Tier { get; }
    public string? ConnectionId { get; }
    public DateTimeOffset CreatedAt { get; }
    public int Depth { get; }
    public string? ParentRequestId { get; }

    public static UserExecutionContext Create(string userId, string threadId, string runId, string tier, DateTimeOffset createdAt,
        string? connectionId = null)
    {
        Validate(userId, nameof(userId));
        Validate(threadId, nameof(threadId));
        Validate(runId, nameof(runId));
        ArgumentException.ThrowIfNullOrWhiteSpace(tier);
        return new(userId, threadId, runId, Guid.CreateVersion7(createdAt).ToString(), tier, createdAt, 0, null, connectionId);
    }

    /// <summary>A context for a step inside this one (an agent, a tool call).</summary>
    public UserExecutionContext CreateChild(string operation)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(operation);
        if (Depth + 1 > MaxDepth)
            throw new InvalidOperationException($"Execution depth {Depth + 1} exceeds the maximum of {MaxDepth} (at '{operation}').");
        return new(UserId, ThreadId, RunId, Guid.CreateVersion7(CreatedAt).ToString(), Tier, CreatedAt, Depth + 1, RequestId, ConnectionId);
    }

    private static void Validate(string value, string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(value, name);
        if (value.Trim().ToLowerInvariant() is "default" or "test" or "null" or "undefined" or "none" or "placeholder" or "0")
            throw new ArgumentException($"'{value}' is a placeholder, not a real id.", name);
    }
}
