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

    // Kept in step with Apex.Client's TriageResult and TriageEntities.
    public static readonly System.Text.Json.JsonElement TriageSchema = Schema("""
        {"type":"object","required":["category","priority","entities","data_sufficiency"],"properties":{
          "category":{"type":"string","enum":["cost","latency","quality","model_selection","workload_analysis","general"]},
          "priority":{"type":"string","enum":["low","medium","high"]},
          "intent":{"type":"string","enum":["greeting","question","advice"]},
          "entities":{"type":"object","properties":{
            "models":{"type":"array","items":{"type":"string"}},"metrics":{"type":"array","items":{"type":"string","enum":["cost","latency","p50","p95","p99","error_rate","tokens","calls"]}},
            "constraints":{"type":"array","items":{"type":"string"}},"providers":{"type":"array","items":{"type":"string"}},
            "features":{"type":"array","items":{"type":"string"}},"teams":{"type":"array","items":{"type":"string"}},
            "window":{"type":"object","required":["from","to"],"properties":{"from":{"type":"string","format":"date-time"},"to":{"type":"string","format":"date-time"},"label":{"type":"string"}}},
            "not_in_data":{"type":"array","items":{"type":"string"}}}},
          "data_sufficiency":{"type":"string","enum":["sufficient","partial","insufficient"]},
          "rationale":{"type":"string"}}}
        """);

    // Kept in step with Apex.Client's DataResult.
    public static readonly System.Text.Json.JsonElement DataSchema = Schema("""
        {"type":"object","required":["summary","findings"],"properties":{
          "answer":{"type":"string"},"summary":{"type":"string"},"findings":{"type":"array","items":{"type":"string"}},"notes":{"type":"array"},"figures":{"type":"object"},
          "focus":{"type":"object"}}}
        """);

    public static readonly System.Text.Json.JsonElement DataHelperSchema = Schema("""
        {"type":"object","required":["status","missing","required_columns","how_to_upload"],"properties":{
          "status":{"type":"string"},"calls_found":{"type":"number"},"message":{"type":"string"},"missing":{"type":"array"},
          "required_columns":{"type":"array"},"optional_columns":{"type":"array"},"how_to_upload":{"type":"string"}}}
        """);

    public static readonly System.Text.Json.JsonElement OptimizationSchema = Schema("""
        {"type":"object","required":["strategies","total_projected_monthly_savings_usd"],"properties":{
          "answer":{"type":"string"},"strategies":{"type":"array"},"total_projected_monthly_savings_usd":{"type":"number","minimum":0},"notes":{"type":"array"}}}
        """);

    public static readonly System.Text.Json.JsonElement ActionsSchema = Schema("""
        {"type":"object","required":["actions"],"properties":{"actions":{"type":"array"}}}
        """);

    private const string AnswerFirst = "Answer the question that was asked first; every figure must come from a tool result, never from you.";

    private const string Filters = "The workload tools take model, feature, team, from and to (ISO 8601, to is exclusive): pass the brief's triage entities, " +
        "one value each, to compute the figure for exactly what was asked.";

    public static IEnumerable<AgentDefinition> Default() =>
    [
        new(AgentNames.Triage, "Reading what the request asks and checking what workload data is available",
            $$"""
            Agent: triage
            You read a user's request about their LLM workload. Call workload_summary to learn what data they uploaded and which models, providers,
            features and teams it names. {{Json}} Fields: category (cost | latency | quality | model_selection | workload_analysis | general),
            priority (low | medium | high), intent (greeting: hello or what can you do; question: a figure about their data; advice: what to do,
            savings or a report), entities { models, providers, features, teams: names exactly as workload_summary lists them;
            metrics: cost | latency | p50 | p95 | p99 | error_rate | tokens | calls; window { from, to, label }: the time the request names
            ("last week", "in October", "yesterday", dates) as ISO 8601, to exclusive, resolved against the brief's now; constraints;
            not_in_data: each model, feature or team the request names that the data does not contain, as "model gemini-1.5-pro" }.
            For a follow-up ("and the chat feature?", "what about its latency?") take what it leaves out from the brief's previous turn:
            "it" is the previous answer's focus, else the previous question's entities. data_sufficiency (sufficient: enough calls over
            enough time to analyse; partial: some data but too little; insufficient: none), rationale.
            """, ["workload_summary"], TriageSchema),
        new(AgentNames.Data, "Computing figures from the user's workload data",
            $$"""
            Agent: data
            You compute real figures from the user's workload data using the tools. {{AnswerFirst}} {{Filters}}
            Call only the tools the question needs. {{Json}} Fields: answer (one or two sentences that answer the question with the figure and
            its basis: how many calls, which model, feature or period; say plainly when the data lacks what was named), summary,
            findings [..] (each a sentence with figures), focus { models, features, teams } (what the answer singled out), and the tool figures you relied on.
            """, ["workload_summary", "cost_breakdown", "latency_profile", "error_analysis", "repeated_prompts", "token_efficiency", "anomalies"], DataSchema),
        new(AgentNames.DataHelper, "Working out which data is missing and how to provide it",
            $$"""
            Agent: data_helper
            You tell the user precisely which workload data is missing and how to upload it (POST /api/workloads, CSV or JSONL, one row per model call).
            Call workload_summary to see what is there. {{Json}} Fields: status, calls_found, missing [..], required_columns [..], optional_columns [..], how_to_upload.
            """, ["workload_summary"], DataHelperSchema),
        new(AgentNames.Optimization, "Finding what to change: routing, caching, batching, prompt trimming, latency fixes",
            $$"""
            Agent: optimization
            You propose strategies for what the request is about. {{AnswerFirst}} {{Filters}}
            For cost: routing to cheaper models, caching repeated prompts, batching, prompt trimming, fallbacks, each with projected savings from the tools.
            For latency: routing latency-sensitive calls to faster models, caching, streaming, timeouts with a fallback, each with its latency effect from the figures.
            For a model choice: routing_what_if for the models named (it needs the pro plan: on a lower plan say so and use what the free tools show).
            {{Json}} Fields: answer (the recommendation in one or two sentences, with its figure), strategies [ { kind, name, description,
            projected_monthly_savings_usd, latency_impact, trade_offs, confidence } ], total_projected_monthly_savings_usd, notes.
            """, ["cost_breakdown", "routing_what_if", "repeated_prompts", "token_efficiency"], OptimizationSchema),
        new(AgentNames.Actions, "Turning the strategies into concrete steps",
            $$"""
            Agent: actions
            You turn the optimization strategies into concrete steps, each with how to validate it and how to roll it back.
            {{Json}} Fields: actions [ { title, steps [..], validation, rollback, expected_savings_usd } ].
            """, [], ActionsSchema),
        new(AgentNames.Reporting, "Writing the answer",
            """
            Agent: reporting
            You write the final answer for the user in markdown from the other agents' results. Answer the question that was asked first: the
            first paragraph is the data agent's answer (and, when the person asked what to do, the optimization agent's), one or two sentences
            with the figure and its basis. Then the supporting detail: for a question, the figures behind it; for advice, the figures the request
            is about first (latency figures and latency strategies for a latency question, the what-if for a model choice), then savings with
            dollar amounts and the action list. For a greeting, say in a few sentences what Apex can do with their data and what to upload; no
            report. If data is missing, say exactly what to upload. Use only figures present in the results.
            """, [], null),
    ];
}
