using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Apex.Server.Execution;

/// <summary>
/// Every limit and timeout of the server, in one place (section <c>Apex:Limits</c>). Their
/// relations are checked at start-up by <see cref="LimitsOptionsValidator"/>.
/// </summary>
internal sealed class LimitsOptions
{
    public const string Section = "Apex:Limits";

    [Range(1, 1000)] public int MaxActiveRunsPerUser { get; set; } = 4;
    /// <summary>Runs this node executes at once; 0 makes it a node that serves clients and executes none.</summary>
    [Range(0, 10_000)] public int MaxConcurrentRunsPerNode { get; set; } = 256;
    [Range(1, 1000)] public int MaxPendingRunsPerThread { get; set; } = 20;
    [Range(1, 100_000)] public int MaxConnectionsPerUser { get; set; } = 20;
    /// <summary>
    /// Open SSE streams (<c>/api/threads/{id}/events</c>) per user per node, counted apart from sockets. With Redis configured this,
    /// <see cref="MaxConnectionsPerUser"/> and the rate limits hold across the cluster instead (per node while Redis is unreachable).
    /// </summary>
    [Range(1, 100_000)] public int MaxSseStreamsPerUser { get; set; } = 20;
    /// <summary>Threads one socket follows at once (each <c>resume</c>, <c>switch_thread</c> or new thread's message follows one).</summary>
    [Range(1, 10_000)] public int MaxFollowsPerConnection { get; set; } = 100;
    /// <summary>Threads a user may keep; deleting one makes room.</summary>
    [Range(1, 10_000_000)] public int MaxThreadsPerUser { get; set; } = 1000;
    [Range(1024, 1024 * 1024)] public int MaxFrameBytes { get; set; } = 8 * 1024;
    [Range(1, 100_000)] public int MaxMessageChars { get; set; } = 4000;
    [Range(1, 100_000)] public int MessagesPerMinutePerUser { get; set; } = 120;
    [Range(1, 100)] public int MaxModelTurnsPerAgent { get; set; } = 8;
    /// <summary>Sign-in requests (register, login, refresh) per client address per minute.</summary>
    [Range(1, 1_000_000)] public int AuthRequestsPerMinutePerAddress { get; set; } = 300;

    public TimeSpan ToolTimeout { get; set; } = TimeSpan.FromSeconds(30);
    public TimeSpan AgentTimeout { get; set; } = TimeSpan.FromMinutes(2);
    public TimeSpan RunTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How often the server pings a socket; a socket that does not answer within <see cref="SocketIdleTimeout"/> is closed.</summary>
    public TimeSpan SocketKeepAliveInterval { get; set; } = TimeSpan.FromSeconds(20);
    public TimeSpan SocketIdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>A running run's lease; a node that stops renewing it is presumed dead when it expires.</summary>
    public TimeSpan RunLease { get; set; } = TimeSpan.FromSeconds(15);
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Answer pieces (<c>message_delta</c>) that follow each other within this window are joined into one event; the first piece
    /// of an answer is sent at once. The window grows with the answer to a tenth of its age, at most ten times this setting.
    /// Zero sends every piece as the model streams it.
    /// </summary>
    public TimeSpan MessageDeltaWindow { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>On shutdown, how long active runs may go on before they are cancelled.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(10);
}

internal sealed class LimitsOptionsValidator : IValidateOptions<LimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitsOptions o)
    {
        var failures = new List<string>();
        if (o.ToolTimeout <= TimeSpan.Zero) failures.Add("ToolTimeout must be positive.");
        if (o.ToolTimeout > o.AgentTimeout) failures.Add("ToolTimeout must not exceed AgentTimeout: a tool runs inside an agent.");
        if (o.AgentTimeout > o.RunTimeout) failures.Add("AgentTimeout must not exceed RunTimeout: an agent runs inside a run.");
        if (o.SocketIdleTimeout <= o.RunTimeout) failures.Add("SocketIdleTimeout must outlive RunTimeout, so a quiet socket survives the longest run.");
        if (o.SocketKeepAliveInterval >= o.SocketIdleTimeout) failures.Add("SocketKeepAliveInterval must be shorter than SocketIdleTimeout.");
        if (o.HeartbeatInterval * 2 >= o.RunLease) failures.Add("RunLease must be more than twice HeartbeatInterval, so one late heartbeat does not lose a run.");
        if (o.MaxMessageChars > o.MaxFrameBytes) failures.Add("MaxMessageChars must fit in MaxFrameBytes.");
        if (o.DrainTimeout < TimeSpan.Zero) failures.Add("DrainTimeout must not be negative.");
        if (o.MessageDeltaWindow < TimeSpan.Zero || o.MessageDeltaWindow > TimeSpan.FromSeconds(5)) failures.Add("MessageDeltaWindow must be between 0 and 5 seconds.");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
