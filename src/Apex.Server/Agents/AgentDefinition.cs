using System.Collections.Immutable;

namespace Apex.Server.Agents;

/// <summary>
/// One agent of the team: its instructions, the tools it may call, and either the JSON schema of its
/// structured result or, for the one that writes the answer, none.
/// </summary>
internal sealed record AgentDefinition(string Name, string Purpose, string Instructions, ImmutableArray<string> Tools, System.Text.Json.JsonElement? OutputSchema)
{
    public bool WritesAnswer => OutputSchema is null;

    /// <summary>How long the agent may take; null: the server's <c>Apex:Limits:AgentTimeout</c>.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>How many rounds of tool calls the agent may make; null: the server's <c>Apex:Limits:MaxModelTurnsPerAgent</c>.</summary>
    public int? MaxTurns { get; init; }

    /// <summary>
    /// Whether the agent is also offered the MCP tools that <c>Apex:Mcp:Servers:*:Agents</c> lists for its name: true for the
    /// shipped team (the deployment names its agents there), false for a user's own agents, which get exactly their <see cref="Tools"/>.
    /// </summary>
    public bool OffersConfiguredTools { get; init; }

    /// <summary>
    /// The definition's <c>approval.required</c>: tool names, or a prefix ending in <c>*</c> (<c>mcp__server__*</c>: every tool of an MCP
    /// server). A call of a matching tool waits for a person's approval before it runs.
    /// </summary>
    public ImmutableArray<string> ApprovalRequired { get; init; } = [];

    public bool RequiresApproval(string tool) => ApprovalMatches(ApprovalRequired, tool);

    public static bool ApprovalMatches(ImmutableArray<string> patterns, string tool) =>
        patterns.Any(p => p.EndsWith('*') ? tool.StartsWith(p[..^1], StringComparison.Ordinal) : p == tool);
}

internal static class AgentNames
{
    public const string Supervisor = "supervisor";
    public const string Triage = "triage";
    public const string Data = "data";
    public const string DataHelper = "data_helper";
    public const string Optimization = "optimization";
    public const string Actions = "actions";
    public const string Reporting = "reporting";
}

internal static class DataSufficiency
{
    public const string Sufficient = "sufficient";
    public const string Partial = "partial";
    public const string Insufficient = "insufficient";
}

/// <summary>What a request wants, as triage reads it.</summary>
internal static class Intents
{
    /// <summary>Hello, what can you do: a short answer, no report.</summary>
    public const string Greeting = "greeting";

    /// <summary>A figure about the data (one model's latency, one feature's cost): the data agent answers it.</summary>
    public const string Question = "question";

    /// <summary>What to do, savings, a report: the whole team. Also the reading of a triage result that names no intent.</summary>
    public const string Advice = "advice";
}

/// <summary>
/// The built-in model's reading of triage's intent (the shipped team's router reads the same field, with the same default,
/// from its definition file).
/// </summary>
internal static class Routing
{
    /// <summary>The intent a triage result stands for: an unknown or missing one reads as advice, the whole team.</summary>
    public static string IntentOf(Apex.Client.TriageResult? triage) =>
        triage?.Intent is Intents.Greeting or Intents.Question ? triage.Intent : Intents.Advice;
}
