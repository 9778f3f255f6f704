using System.Text.Json;
using System.Text.Json.Serialization;

namespace Apex.Client;

// The shapes carried in tool_completed.result, agent_completed.result and a run's results: the built-in tools'
// figures and the shipped agents' structured results. A real model's agent results are checked against the agents'
// JSON schemas, which these records satisfy; a client may read them with ApexJsonContext.

/// <summary>
/// Result of <c>workload_summary</c>: totals of the user's uploaded LLM calls (those the filter selects), and the models,
/// providers, features and teams they name.
/// </summary>
public sealed record WorkloadSummaryResult(long Calls, long Errors, double ErrorRate, long PromptTokens, long CompletionTokens, double AvgLatencyMs,
    double TotalCostUsd, double MonthlyCostUsd, IReadOnlyList<string> Models, DateTimeOffset? FirstCall, DateTimeOffset? LastCall, double DaysCovered,
    IReadOnlyList<string>? Providers = null, IReadOnlyList<string>? Features = null, IReadOnlyList<string>? Teams = null);

/// <summary>Result of <c>cost_breakdown</c>.</summary>
public sealed record CostBreakdownResult(string GroupBy, double TotalCostUsd, double MonthlyCostUsd, IReadOnlyList<CostGroupFigure> Groups);

/// <summary>One group of <see cref="CostBreakdownResult"/>; <c>Share</c> is of the total cost.</summary>
public sealed record CostGroupFigure(string Key, long Calls, double CostUsd, double Share);

/// <summary>Result of <c>latency_profile</c>: nearest-rank percentiles, overall and per model (slowest at p95 first).</summary>
public sealed record LatencyProfileResult(LatencyFigures Overall, IReadOnlyList<ModelLatency> Models);

/// <summary>Latency percentiles of a set of calls, in milliseconds.</summary>
public sealed record LatencyFigures(long Calls, double P50Ms, double P95Ms, double P99Ms, double MeanMs);

/// <summary>Latency percentiles of one model, in milliseconds.</summary>
public sealed record ModelLatency(string Model, long Calls, double P50Ms, double P95Ms, double P99Ms, double MeanMs);

/// <summary>Result of <c>error_analysis</c>.</summary>
public sealed record ErrorAnalysisResult(long Calls, long Errors, double ErrorRate, IReadOnlyList<ModelErrors> Models, IReadOnlyList<StatusCount> Statuses);

/// <summary>Failed calls of one model.</summary>
public sealed record ModelErrors(string Model, long Calls, long Errors, double ErrorRate);

/// <summary>How many calls ended with one error status.</summary>
public sealed record StatusCount(string Status, long Calls);

/// <summary>Result of <c>repeated_prompts</c>: the caching opportunity.</summary>
public sealed record RepeatedPromptsResult(long DistinctRepeatedPrompts, long RepeatCalls, double RepeatRate, double RepeatCostUsd, double MonthlyCacheSavingsUsd,
    IReadOnlyList<RepeatedPromptFigure> Top);

/// <summary>One prompt sent more than once to one model.</summary>
public sealed record RepeatedPromptFigure(string PromptHash, string Model, long Calls, double CostUsd);

/// <summary>Result of <c>token_efficiency</c>.</summary>
public sealed record TokenEfficiencyResult(IReadOnlyList<ModelTokens> Models,
    [property: JsonPropertyName("monthly_savings_trim_20pct_usd")] double MonthlySavingsTrim20PctUsd);

/// <summary>Tokens per call of one model; costs are null for a model without a price.</summary>
public sealed record ModelTokens(string Model, double AvgPromptTokens, double AvgCompletionTokens, double? InputCostUsd,
    [property: JsonPropertyName("monthly_savings_trim_20pct_usd")] double? MonthlySavingsTrim20PctUsd);

/// <summary>Result of <c>routing_what_if</c>: a share of one model's traffic moved to another.</summary>
public sealed record RoutingWhatIfResult(string FromModel, string ToModel, double Share, long MovedCalls, double CurrentCostUsd, double ProjectedCostUsd,
    double SavingsUsd, double MonthlySavingsUsd, double FromAvgLatencyMs, double? ProjectedAvgLatencyMs);

/// <summary>Result of <c>anomalies</c>: hours whose cost is more than three standard deviations above the mean.</summary>
public sealed record AnomaliesResult(long Hours, double MeanHourlyCostUsd, double StddevHourlyCostUsd, IReadOnlyList<CostAnomaly> Anomalies);

/// <summary>One anomalous hour.</summary>
public sealed record CostAnomaly(DateTimeOffset Hour, long Calls, double CostUsd, double ZScore);

/// <summary>Result of an MCP server's tool (<c>mcp__&lt;server&gt;__&lt;tool&gt;</c>): its text content, and its structured content when it gave one.</summary>
public sealed record McpToolResult(string Text, JsonElement? Structured);

/// <summary>What the model is told when a tool call did not succeed (status denied, invalid, timeout, error or cancelled).</summary>
public sealed record ToolErrorResult(string Status, string Error);

/// <summary>
/// The brief an agent receives: the request, the user's tier, the thread's recent messages, the results so far, the
/// current time (to resolve "last week") and what the thread's previous answer was about (to resolve "it").
/// </summary>
public sealed record AgentBrief(string Request, string Tier, IReadOnlyList<BriefMessage> History, IReadOnlyDictionary<string, JsonElement> Results,
    DateTimeOffset? Now = null, PreviousTurn? Previous = null);

/// <summary>The thread's previous question as triage read it, and what its answer singled out (the slowest model, say).</summary>
public sealed record PreviousTurn(string Request, TriageResult? Triage, TriageEntities? Focus);

/// <summary>One earlier message of the thread, in a brief.</summary>
public sealed record BriefMessage(string Role, string Content);

/// <summary>
/// Result of <c>triage</c>. <c>Intent</c> is <c>greeting</c> (hello, what can you do), <c>question</c> (a figure about the
/// data) or <c>advice</c> (what to do, savings, a report); it decides, with the data sufficiency, which agents run.
/// </summary>
public sealed record TriageResult(string Category, string Priority, TriageEntities Entities, string DataSufficiency, string? Rationale, string? Intent = null);

/// <summary>
/// What a request names, resolved against the user's data: models, providers, features and teams that are in it,
/// metrics (cost, latency, p50, p95, p99, error_rate, tokens), a time window, and the names the data lacks.
/// </summary>
public sealed record TriageEntities(IReadOnlyList<string> Models, IReadOnlyList<string> Metrics, IReadOnlyList<string> Constraints,
    IReadOnlyList<string>? Providers = null, IReadOnlyList<string>? Features = null, IReadOnlyList<string>? Teams = null, TimeWindow? Window = null,
    IReadOnlyList<string>? NotInData = null);

/// <summary>A time window a request names: <c>From</c> inclusive, <c>To</c> exclusive, and the words it came from.</summary>
public sealed record TimeWindow(DateTimeOffset From, DateTimeOffset To, string Label);

/// <summary>Result of <c>data_helper</c>: which data is missing and how to upload it.</summary>
public sealed record DataHelperResult(string Status, double CallsFound, string Message, IReadOnlyList<string> Missing, IReadOnlyList<string> RequiredColumns,
    IReadOnlyList<string> OptionalColumns, string HowToUpload);

/// <summary>
/// Result of <c>data</c>: findings with figures, and the tool results they come from. <c>Answer</c> answers the question
/// in one or two sentences; <c>Focus</c> is what it singled out, for a follow-up's "it".
/// </summary>
public sealed record DataResult(string Summary, IReadOnlyList<string> Findings, IReadOnlyList<string> Notes, IReadOnlyDictionary<string, JsonElement> Figures,
    string? Answer = null, TriageEntities? Focus = null);

/// <summary>Result of <c>optimization</c>; <c>Answer</c> is the recommendation in one or two sentences.</summary>
public sealed record OptimizationResult(IReadOnlyList<SavingStrategy> Strategies, double TotalProjectedMonthlySavingsUsd, IReadOnlyList<string> Notes, string? Answer = null);

/// <summary>One way to save, with its projected monthly saving computed from the data.</summary>
public sealed record SavingStrategy(string Kind, string Name, string Description, double ProjectedMonthlySavingsUsd, string LatencyImpact, string TradeOffs,
    string Confidence);

/// <summary>Result of <c>actions</c>.</summary>
public sealed record ActionsResult(IReadOnlyList<ActionItem> Actions);

/// <summary>A concrete step with how to validate it and how to roll it back.</summary>
public sealed record ActionItem(string? Title, IReadOnlyList<string> Steps, string Validation, string Rollback, double ExpectedSavingsUsd);

/// <summary>The supervisor's result: the data sufficiency and intent triage found, and the agents it ran after triage.</summary>
public sealed record SupervisorResult(string DataSufficiency, IReadOnlyList<string> Pipeline, string? Intent = null);

/// <summary>An agent's answer that was not a JSON object, kept as text.</summary>
public sealed record TextResult(string Text);

/// <summary>
/// Where a run that waits for a tool approval resumes (stored with the run, read by whichever node resumes it): the agents'
/// results so far, the pipeline and the position of the waiting agent in it (-1: the router's triage agent), the answer's id and
/// text so far, and the waiting agent's conversation up to the call that waits (<c>CallId</c>).
/// </summary>
public sealed record RunCheckpoint(IReadOnlyList<string> Pipeline, int Position, IReadOnlyDictionary<string, JsonElement> Results, string? Sufficiency, string? Intent,
    string AnswerId, string Answer, string? Note, string Agent, string CallId, IReadOnlyList<CheckpointMessage> Conversation, int Rounds);

/// <summary>One message of a waiting agent's conversation: its role, its text, the tool calls it made and the tool results it carries.</summary>
public sealed record CheckpointMessage(string Role, string? Text = null, IReadOnlyList<CheckpointCall>? Calls = null, IReadOnlyList<CheckpointResult>? Results = null);

/// <summary>A tool call in a checkpoint: its id, tool and arguments.</summary>
public sealed record CheckpointCall(string CallId, string Name, JsonElement Arguments);

/// <summary>A tool result in a checkpoint.</summary>
public sealed record CheckpointResult(string CallId, JsonElement Result);
