using System.Collections.Immutable;

namespace Apex.Server.Agents;

/// <summary>
/// One agent of the team: its instructions, the tools it may call, and either the JSON schema of its
/// structured result or, for the one that writes the answer, none.
/// </summary>
internal sealed record AgentDefinition(string Name, string Purpose, string Instructions, ImmutableArray<string> Tools, System.Text.Json.JsonElement? OutputSchema)
{
    public bool WritesAnswer => OutputSchema is null;
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

    /// <summary>The pipeline after triage (DESIGN §3).</summary>
    public static ImmutableArray<string> PipelineFor(string? sufficiency) => sufficiency switch
    {
        Sufficient => [AgentNames.Data, AgentNames.Optimization, AgentNames.Actions, AgentNames.Reporting],
        Partial => [AgentNames.DataHelper, AgentNames.Data, AgentNames.Reporting],
        _ => [AgentNames.DataHelper, AgentNames.Reporting],
    };
}
