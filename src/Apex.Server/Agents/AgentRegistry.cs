using System.Collections.Frozen;

namespace Apex.Server.Agents;

/// <summary>The agents of the team, by name; built once at start-up and never changed.</summary>
internal sealed class AgentRegistry
{
    private readonly FrozenDictionary<string, AgentDefinition> _agents;

    public AgentRegistry(IEnumerable<AgentDefinition> agents) =>
        _agents = agents.ToFrozenDictionary(a => a.Name, StringComparer.Ordinal);

    public AgentDefinition Get(string name) =>
        _agents.TryGetValue(name, out var agent) ? agent : throw new InvalidOperationException($"No agent is named '{name}'.");

    public IEnumerable<string> Names => _agents.Keys;
}

/// <summary>The shipped team: an AI-workload optimization assistant.</summary>
internal static class AgentTeam
{
    private const string Json = "Answer with one JSON object only, no prose around it.";

    private static System.Text.Json.JsonElement Schema(string json) => System.Text.Json.JsonDocument.Parse(json).RootElement.Clone();

    public static readonly System.Text.Json.JsonElement TriageSchema = Schema("""
        {"type":"object","required":["category","priority","entities","data_sufficiency"],"properties":{
          "category":{"type":"string","enum":["cost","latency","quality","model_selection","workload_analysis","general"]},
          "priority":{"type":"string","enum":["low","medium","high"]},
          "entities":{"type":"object"},
          "data_sufficiency":{"type":"string","enum":["sufficient","partial","insufficient"]},
          "rationale":{"type":"string"}}}
        """);

    public static readonly System.Text.Json.JsonElement DataSchema = Schema("""
        {"type":"object","required":["summary","findings"],"properties":{
          "summary":{"type":"string"},"findings":{"type":"array"},"notes":{"type":"array"},"figures":{"type":"object"}}}
        """);

    public static readonly System.Text.Json.JsonElement DataHelperSchema = Schema("""
        {"type":"object","required":["status","missing","required_columns","how_to_upload"],"properties":{
          "status":{"type":"string"},"calls_found":{"type":"number"},"message":{"type":"string"},"missing":{"type":"array"},
          "required_columns":{"type":"array"},"optional_columns":{"type":"array"},"how_to_upload":{"type":"string"}}}
        """);

    public static readonly System.Text.Json.JsonElement OptimizationSchema = Schema("""
        {"type":"object","required":["strategies","total_projected_monthly_savings_usd"],"properties":{
          "strategies":{"type":"array"},"total_projected_monthly_savings_usd":{"type":"number","minimum":0},"notes":{"type":"array"}}}
        """);

    public static readonly System.Text.Json.JsonElement ActionsSchema = Schema("""
        {"type":"object","required":["actions"],"properties":{"actions":{"type":"array"}}}
        """);

    public static IEnumerable<AgentDefinition> Default() =>
    [
        new(AgentNames.Triage, "Classifying the request and checking what workload data is available",
            $$"""
            Agent: triage
            You classify a user's request about their LLM workload. Call workload_summary to learn what data they uploaded.
            {{Json}} Fields: category (cost | latency | quality | model_selection | workload_analysis | general), priority (low | medium | high),
            entities { models: [..], metrics: [..], constraints: [..] }, data_sufficiency (sufficient: enough calls over enough time to analyse;
            partial: some data but too little; insufficient: none), rationale.
            """, ["workload_summary"], TriageSchema),
        new(AgentNames.Data, "Computing figures from the user's workload data",
            $$"""
            Agent: data
            You compute real figures from the user's workload data using the tools. Never invent a number: every figure must come from a tool result.
            {{Json}} Fields: summary, findings [..] (each a sentence with figures), and the tool figures you relied on.
            """, ["workload_summary", "cost_breakdown", "latency_profile", "error_analysis", "repeated_prompts", "token_efficiency", "anomalies"], DataSchema),
        new(AgentNames.DataHelper, "Working out which data is missing and how to provide it",
            $$"""
            Agent: data_helper
            You tell the user precisely which workload data is missing and how to upload it (POST /api/workloads, CSV or JSONL, one row per model call).
            Call workload_summary to see what is there. {{Json}} Fields: status, calls_found, missing [..], required_columns [..], optional_columns [..], how_to_upload.
            """, ["workload_summary"], DataHelperSchema),
        new(AgentNames.Optimization, "Finding savings: routing, caching, batching, prompt trimming",
            $$"""
            Agent: optimization
            You propose strategies to cut cost and latency without losing quality: routing to cheaper models, caching repeated prompts, batching,
            prompt trimming, fallbacks. Use the tools to compute projected savings from the data; never guess a figure.
            {{Json}} Fields: strategies [ { name, description, projected_monthly_savings_usd, latency_impact, trade_offs, confidence } ], total_projected_monthly_savings_usd.
            """, ["cost_breakdown", "routing_what_if", "repeated_prompts", "token_efficiency"], OptimizationSchema),
        new(AgentNames.Actions, "Turning the strategies into concrete steps",
            $$"""
            Agent: actions
            You turn the optimization strategies into concrete steps, each with how to validate it and how to roll it back.
            {{Json}} Fields: actions [ { title, steps [..], validation, rollback, expected_savings_usd } ].
            """, [], ActionsSchema),
        new(AgentNames.Reporting, "Writing the final report",
            """
            Agent: reporting
            You write the final answer for the user in markdown from the other agents' results: headline figures, the top savings with dollar
            amounts, and an action list. If data is missing, say exactly what to upload. Use only figures present in the results.
            """, [], null),
    ];
}
