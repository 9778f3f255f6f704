using System.Text.Json;
using Apex.Client;

namespace Apex.Server.Agents;

/// <summary>
/// The built-in model's reasoning for each agent: deterministic rules over the brief and the
/// tool results. Every figure it writes is read from a tool result, never made up.
/// </summary>
internal static class BuiltInAgents
{
    /// <summary>Calls below this count are too few for a reliable analysis.</summary>
    public const int MinCallsForAnalysis = 200;

    private static ApexJsonContext Json => ApexJsonContext.Default;

    /// <summary>
    /// The tool calls the built-in model makes for the tools it is offered: every workload tool, with arguments chosen from the
    /// brief. A tool whose arguments it cannot choose (the routing what-if with fewer than two models) is not called.
    /// </summary>
    public static List<(string Tool, Dictionary<string, object?> Arguments)> PlanToolCalls(IEnumerable<string> offered, AgentBrief brief)
    {
        var calls = new List<(string, Dictionary<string, object?>)>();
        foreach (var tool in offered)
        {
            switch (tool)
            {
                case "cost_breakdown":
                    calls.Add((tool, new() { ["group_by"] = "model" }));
                    break;
                case "routing_what_if":
                    if (RoutingCandidates(brief) is { } pair) calls.Add((tool, new() { ["from_model"] = pair.From, ["to_model"] = pair.To, ["share"] = 0.5 }));
                    break;
                case "workload_summary" or "latency_profile" or "error_analysis" or "repeated_prompts" or "token_efficiency" or "anomalies":
                    calls.Add((tool, new()));
                    break;
                // Any other tool offered (a deployment's own, an MCP server's) is not one whose result these rules read.
            }
        }
        return calls;
    }

    /// <summary>From the data agent's figures: the model with the highest spend, and the one with the lowest cost per call.</summary>
    private static (string From, string To)? RoutingCandidates(AgentBrief brief)
    {
        var figures = AgentResults.Agent(brief.Results, AgentNames.Data, Json.DataResult)?.Figures;
        var groups = (figures is null ? null : AgentResults.Tool(figures, "cost_breakdown", Json.CostBreakdownResult))?.Groups
            .Where(g => g.Key is not null && g.Calls > 0).ToList() ?? [];
        if (groups.Count < 2) return null;
        var from = groups.MaxBy(g => g.CostUsd)!;
        var to = groups.Where(g => g.Key != from.Key).MinBy(g => g.CostUsd / g.Calls)!;
        return to.CostUsd / to.Calls < from.CostUsd / from.Calls ? (from.Key, to.Key) : null;
    }

    public static string Triage(AgentBrief brief, IReadOnlyDictionary<string, JsonElement> results)
    {
        var request = brief.Request.ToLowerInvariant();
        var summary = AgentResults.Tool(results, "workload_summary", Json.WorkloadSummaryResult);
        var calls = summary?.Calls ?? 0;
        var category = request switch
        {
            _ when ContainsAny(request, "cost", "spend", "price", "bill", "cheap", "budget", "$", "money", "save") => "cost",
            _ when ContainsAny(request, "latency", "slow", "fast", "p95", "p99", "speed", "response time") => "latency",
            _ when ContainsAny(request, "quality", "accuracy", "hallucinat", "wrong answer") => "quality",
            _ when ContainsAny(request, "which model", "switch", "model choice", "route", "routing", "gpt", "claude", "llama") => "model_selection",
            _ when ContainsAny(request, "usage", "workload", "analy", "breakdown", "report", "traffic", "error") => "workload_analysis",
            _ => "general",
        };
        var priority = ContainsAny(request, "urgent", "asap", "critical", "outage", "immediately") ? "high" : category is "cost" or "latency" ? "medium" : "low";
        var models = (summary?.Models ?? []).Where(m => request.Contains(m.ToLowerInvariant(), StringComparison.Ordinal)).ToList();
        string[] metricWords = ["cost", "latency", "p95", "p99", "tokens", "errors", "throughput"];
        var metrics = metricWords.Where(w => request.Contains(w, StringComparison.Ordinal)).ToList();
        var constraints = new List<string>();
        if (ContainsAny(request, "without losing quality", "keep quality", "same quality")) constraints.Add("keep quality");
        if (ContainsAny(request, "budget")) constraints.Add("budget");
        var sufficiency = summary is null || calls == 0 ? DataSufficiency.Insufficient
            : calls < MinCallsForAnalysis ? DataSufficiency.Partial : DataSufficiency.Sufficient;
        var rationale = sufficiency switch
        {
            DataSufficiency.Insufficient => "No workload data has been uploaded yet.",
            DataSufficiency.Partial => $"Only {calls:0} calls are uploaded; at least {MinCallsForAnalysis} are needed for a reliable analysis.",
            _ => $"{calls:0} calls over {summary!.DaysCovered:0.##} days are enough to analyse.",
        };
        return JsonSerializer.Serialize(new TriageResult(category, priority, new TriageEntities(models, metrics, constraints), sufficiency, rationale), Json.TriageResult);
    }

    public static string DataHelper(IReadOnlyDictionary<string, JsonElement> results)
    {
        var summary = AgentResults.Tool(results, "workload_summary", Json.WorkloadSummaryResult);
        var calls = summary?.Calls ?? 0;
        var missing = new List<string>();
        if (calls == 0) missing.Add("Any LLM usage data: no calls are uploaded yet.");
        else if (calls < MinCallsForAnalysis) missing.Add($"More calls: {calls:0} uploaded, at least {MinCallsForAnalysis} needed (ideally a week or more of traffic).");
        if (calls > 0 && summary!.DaysCovered < 1) missing.Add("A longer time span: the data covers less than a day, so daily patterns cannot be seen.");
        return JsonSerializer.Serialize(new DataHelperResult(
            calls == 0 ? "no_data" : "too_little_data",
            calls,
            calls == 0
                ? "I can't analyse your workload yet: no LLM usage data has been uploaded for your account."
                : $"I found {calls:0} calls in your data, which is too little for reliable savings figures.",
            missing,
            ["timestamp", "provider", "model", "prompt_tokens", "completion_tokens", "latency_ms", "status"],
            ["cost", "prompt_hash", "feature", "team", "error"],
            "Upload a CSV or JSONL file with one row per model call to `POST /api/workloads` (or try `POST /api/workloads/sample` for a realistic sample), then ask again."),
            Json.DataHelperResult);
    }

    public static string Data(IReadOnlyDictionary<string, JsonElement> results)
    {
        var summary = AgentResults.Tool(results, "workload_summary", Json.WorkloadSummaryResult);
        var costs = AgentResults.Tool(results, "cost_breakdown", Json.CostBreakdownResult);
        var latency = AgentResults.Tool(results, "latency_profile", Json.LatencyProfileResult);
        var errors = AgentResults.Tool(results, "error_analysis", Json.ErrorAnalysisResult);
        var repeats = AgentResults.Tool(results, "repeated_prompts", Json.RepeatedPromptsResult);
        var anomalies = AgentResults.Tool(results, "anomalies", Json.AnomaliesResult);
        var findings = new List<string>();
        if (summary is not null)
            findings.Add($"{summary.Calls:0} calls over {summary.DaysCovered:0.#} days across {summary.Models.Count} models cost " +
                         $"${Figures.Money(summary.TotalCostUsd)} (about ${Figures.Money(summary.MonthlyCostUsd)} a month).");
        if (costs?.Groups.FirstOrDefault() is { } top)
            findings.Add($"{top.Key} is the largest cost: ${Figures.Money(top.CostUsd)}, {top.Share * 100:0.#}% of spend.");
        if (latency is not null)
        {
            var slowest = latency.Models.FirstOrDefault();
            findings.Add($"Latency p50 {latency.Overall.P50Ms:0} ms, p95 {latency.Overall.P95Ms:0} ms, p99 {latency.Overall.P99Ms:0} ms" +
                         (slowest is null ? "." : $"; slowest at p95 is {slowest.Model} ({slowest.P95Ms:0} ms)."));
        }
        if (errors is not null)
        {
            var worst = errors.Models.FirstOrDefault();
            findings.Add($"Error rate {errors.ErrorRate * 100:0.##}% ({errors.Errors:0} failed calls)" +
                         (worst is null || worst.Errors == 0 ? "." : $"; highest on {worst.Model} at {worst.ErrorRate * 100:0.##}%."));
        }
        if (repeats is not null)
            findings.Add($"{repeats.RepeatRate * 100:0.#}% of successful calls repeat an earlier prompt; the repeats cost ${Figures.Money(repeats.RepeatCostUsd)}.");
        if (anomalies is not null)
        {
            findings.Add(anomalies.Anomalies.Count == 0 ? "No hour's cost is far from the norm."
                : $"{anomalies.Anomalies.Count} hour(s) cost far more than usual; the worst, {anomalies.Anomalies[0].Hour:yyyy-MM-dd HH:mm} UTC, " +
                  $"cost ${Figures.Money(anomalies.Anomalies[0].CostUsd)} (z = {anomalies.Anomalies[0].ZScore:0.#}).");
        }
        var notes = results.Select(r => (Tool: r.Key, Error: AgentResults.ToolError(r.Value))).Where(r => r.Error is not null)
            .Select(r => $"{r.Tool}: {r.Error!.Error}").ToList();
        var headline = summary is null ? "No figures could be computed."
            : $"You spent ${Figures.Money(summary.TotalCostUsd)} on {summary.Calls:0} LLM calls (about ${Figures.Money(summary.MonthlyCostUsd)} a month).";
        return JsonSerializer.Serialize(new DataResult(headline, findings, notes, results), Json.DataResult);
    }

    public static string Optimization(IReadOnlyDictionary<string, JsonElement> results)
    {
        var strategies = new List<SavingStrategy>();
        var notes = new List<string>();
        if (AgentResults.Tool(results, "routing_what_if", Json.RoutingWhatIfResult) is { MonthlySavingsUsd: > 0 } r)
        {
            strategies.Add(Strategy("routing", $"Route {r.Share * 100:0}% of {r.FromModel} traffic to {r.ToModel}",
                $"Send the simpler requests now handled by {r.FromModel} to {r.ToModel}: ${Figures.Money(r.CurrentCostUsd)} of observed cost becomes ${Figures.Money(r.ProjectedCostUsd)}.",
                r.MonthlySavingsUsd,
                r.ProjectedAvgLatencyMs is { } after ? $"mean latency {r.FromAvgLatencyMs:0} ms -> {after:0} ms" : "unknown",
                "The cheaper model may answer hard prompts worse: route by task type and compare quality on a sample first.", "medium"));
        }
        else if (results.TryGetValue("routing_what_if", out var denied) && AgentResults.ToolError(denied) is { } error)
        {
            notes.Add($"Routing analysis was not available: {error.Error}");
        }
        if (AgentResults.Tool(results, "repeated_prompts", Json.RepeatedPromptsResult) is { MonthlyCacheSavingsUsd: > 0 } repeats)
        {
            strategies.Add(Strategy("caching", "Cache responses to repeated prompts",
                $"{repeats.RepeatCalls:0} calls ({repeats.RepeatRate * 100:0.#}%) repeat an earlier prompt exactly; serve them from a cache keyed by prompt hash and model.",
                repeats.MonthlyCacheSavingsUsd, "cache hits answer in milliseconds instead of seconds",
                "Cached answers can go stale: set a time-to-live and skip the cache for personalised prompts.", "high"));
        }
        if (AgentResults.Tool(results, "token_efficiency", Json.TokenEfficiencyResult) is { MonthlySavingsTrim20PctUsd: > 0 } tokens)
        {
            strategies.Add(Strategy("prompt_trimming", "Trim prompts by 20%",
                "Shorten system prompts and retrieved context (remove duplicated instructions, cap retrieved chunks); 20% fewer input tokens at today's volume.",
                tokens.MonthlySavingsTrim20PctUsd, "slightly faster (fewer input tokens)",
                "Over-trimmed context lowers answer quality: trim with an evaluation set.", "medium"));
        }
        strategies.Sort((a, b) => b.ProjectedMonthlySavingsUsd.CompareTo(a.ProjectedMonthlySavingsUsd));
        return JsonSerializer.Serialize(new OptimizationResult(strategies, Math.Round(strategies.Sum(s => s.ProjectedMonthlySavingsUsd), 2), notes), Json.OptimizationResult);
    }

    private static SavingStrategy Strategy(string kind, string name, string description, double savings, string latency, string tradeOffs, string confidence) =>
        new(kind, name, description, Math.Round(savings, 2), latency, tradeOffs, confidence);

    public static string Actions(AgentBrief brief)
    {
        var strategies = AgentResults.Agent(brief.Results, AgentNames.Optimization, Json.OptimizationResult)?.Strategies ?? [];
        var actions = strategies.Select(s =>
        {
            string[] steps = s.Kind switch
            {
                "routing" => ["Tag requests by task type (classification, extraction, chat).", "Behind a feature flag, send the simple types to the cheaper model for 10% of traffic.", "Raise the share step by step while quality holds."],
                "caching" => ["Put a cache keyed by (model, prompt hash) in front of the model client.", "Start with a 24-hour time-to-live.", "Exclude prompts that contain user-specific data."],
                "prompt_trimming" => ["Measure prompt tokens per feature.", "Remove repeated instructions and cap retrieved context.", "Re-run the evaluation set before shipping each cut."],
                _ => [s.Description ?? ""],
            };
            return new ActionItem(s.Name, steps,
                "Compare cost, p95 latency, error rate and a quality sample for a week against the week before.",
                "Turn the feature flag off; the previous path keeps working meanwhile.",
                s.ProjectedMonthlySavingsUsd);
        }).ToList();
        return JsonSerializer.Serialize(new ActionsResult(actions), Json.ActionsResult);
    }

    private static bool ContainsAny(string text, params string[] words) => words.Any(w => text.Contains(w, StringComparison.Ordinal));
}
