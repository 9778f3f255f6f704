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

/// <summary>One rule of the supervisor's routing: a triage intent and data sufficiency (null matches any) and the agents that follow.</summary>
internal sealed record Route(string? Intent, string? Sufficiency, ImmutableArray<string> Pipeline);

/// <summary>
/// The supervisor's routing from the triage result to the agents after it, as data (DESIGN §3): the first rule that
/// matches wins. A greeting is answered alone; a focused question goes to the data agent; advice runs the whole team;
/// missing or thin data brings in the data helper whatever was asked.
/// </summary>
internal static class Routing
{
    public static readonly ImmutableArray<Route> Default =
    [
        new(Intents.Greeting, null, [AgentNames.Reporting]),
        new(Intents.Question, DataSufficiency.Sufficient, [AgentNames.Data, AgentNames.Reporting]),
        new(null, DataSufficiency.Sufficient, [AgentNames.Data, AgentNames.Optimization, AgentNames.Actions, AgentNames.Reporting]),
        new(null, DataSufficiency.Partial, [AgentNames.DataHelper, AgentNames.Data, AgentNames.Reporting]),
        new(null, null, [AgentNames.DataHelper, AgentNames.Reporting]),
    ];

    /// <summary>The intent a triage result stands for: an unknown or missing one reads as advice, the whole team.</summary>
    public static string IntentOf(Apex.Client.TriageResult? triage) =>
        triage?.Intent is Intents.Greeting or Intents.Question ? triage.Intent : Intents.Advice;

    public static ImmutableArray<string> PipelineFor(Apex.Client.TriageResult? triage, ImmutableArray<Route> routes)
    {
        var intent = IntentOf(triage);
        var sufficiency = triage?.DataSufficiency ?? DataSufficiency.Insufficient;
        foreach (var route in routes)
            if ((route.Intent is null || route.Intent == intent) && (route.Sufficiency is null || route.Sufficiency == sufficiency)) return route.Pipeline;
        return [AgentNames.Reporting];
    }
}
