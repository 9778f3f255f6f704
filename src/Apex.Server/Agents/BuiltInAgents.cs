using System.Collections.Frozen;
using System.Collections.Immutable;
using System.Globalization;
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
    /// The tool calls the built-in model makes for the tools it is offered. For a focused question the data agent calls only
    /// the tools its metrics need; otherwise every workload tool offered is called (a deployment's own or an MCP server's tools are not ones these rules read). Either way each call carries the filters of what the
    /// request names (one model, feature or team, a time window), and the routing what-if is called for the models the request
    /// names, else for a pair the figures suggest (and not at all when there is none).
    /// </summary>
    public static List<(string Tool, Dictionary<string, object?> Arguments)> PlanToolCalls(string agent, IEnumerable<string> offered, AgentBrief brief)
    {
        var calls = new List<(string, Dictionary<string, object?>)>();
        var triage = AgentResults.Agent(brief.Results, AgentNames.Triage, Json.TriageResult);
        var filter = FilterArguments(triage);
        var tools = offered.ToList();
        if (agent == AgentNames.Data && triage is not null && Routing.IntentOf(triage) == Intents.Question)
        {
            var wanted = FocusedTools(triage.Entities.Metrics);
            tools = [.. tools.Where(wanted.Contains)];
        }
        foreach (var tool in tools)
        {
            switch (tool)
            {
                case "workload_summary" when agent is AgentNames.Triage or AgentNames.DataHelper:
                    calls.Add((tool, new())); // all of the data: triage resolves names against it
                    break;
                case "cost_breakdown":
                    calls.Add((tool, new(filter) { ["group_by"] = triage?.Entities is { Models.Count: 1 } e && (e.Features?.Count ?? 0) == 0 && filter.ContainsKey("model") ? "feature" : "model" }));
                    break;
                case "routing_what_if":
                    if (RoutingCandidates(brief, triage) is { } pair)
                        calls.Add((tool, new(filter.Where(f => f.Key != "model")) { ["from_model"] = pair.From, ["to_model"] = pair.To, ["share"] = pair.Share }));
                    break;
                case "workload_summary" or "latency_profile" or "error_analysis" or "repeated_prompts" or "token_efficiency" or "anomalies":
                    calls.Add((tool, new(filter)));
                    break;
                // Any other tool offered (a deployment's own, an MCP server's) is not one whose result these rules read.
            }
        }
        return calls;
    }

    private static HashSet<string> FocusedTools(IReadOnlyList<string> metrics)
    {
        var tools = new HashSet<string>(StringComparer.Ordinal) { "workload_summary" };
        if (metrics.Contains("cost")) tools.Add("cost_breakdown");
        if (metrics.Any(m => m is "latency" or "p50" or "p95" or "p99")) tools.Add("latency_profile");
        if (metrics.Contains("error_rate")) tools.Add("error_analysis");
        if (metrics.Contains("tokens")) tools.Add("token_efficiency");
        if (tools.Count == 1 && !metrics.Contains("calls")) tools.UnionWith(["cost_breakdown", "latency_profile", "error_analysis"]);
        return tools;
    }

    /// <summary>The filter arguments for what triage found: one value of each kind (two models named are compared, not filtered on).</summary>
    private static Dictionary<string, object?> FilterArguments(TriageResult? triage)
    {
        var filter = new Dictionary<string, object?>();
        if (triage?.Entities is not { } e) return filter;
        if (e.Models is [var model] && triage.Category != "model_selection") filter["model"] = model;
        if (e.Features is [var feature]) filter["feature"] = feature;
        if (e.Teams is [var team]) filter["team"] = team;
        if (e.Window is { } window)
        {
            filter["from"] = window.From.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
            filter["to"] = window.To.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        }
        return filter;
    }

    /// <summary>
    /// The what-if to run: the models a model-choice request names (all of the first one's traffic); for a latency request the
    /// slowest model at p95 to the fastest; otherwise the model with the highest spend to the one with the lowest cost per call.
    /// </summary>
    private static (string From, string To, double Share)? RoutingCandidates(AgentBrief brief, TriageResult? triage)
    {
        var figures = AgentResults.Agent(brief.Results, AgentNames.Data, Json.DataResult)?.Figures;
        var groups = (figures is null ? null : AgentResults.Tool(figures, "cost_breakdown", Json.CostBreakdownResult))?.Groups
            .Where(g => g.Key is not null && g.Calls > 0).ToList() ?? [];
        var named = triage?.Entities.Models ?? [];
        if (triage?.Category == "model_selection" && named.Count >= 2) return (named[0], named[1], 1.0);
        if (triage?.Category == "model_selection" && named.Count == 1 && groups.Where(g => g.Key != named[0]).MinBy(g => g.CostUsd / g.Calls) is { } cheapest)
            return (named[0], cheapest.Key, 1.0);
        if (triage?.Category == "latency" && (figures is null ? null : AgentResults.Tool(figures, "latency_profile", Json.LatencyProfileResult)) is { Models.Count: >= 2 } latency)
            return (latency.Models[0].Model, latency.Models[^1].Model, 0.5);
        if (groups.Count < 2) return null;
        var from = groups.MaxBy(g => g.CostUsd)!;
        var to = groups.Where(g => g.Key != from.Key).MinBy(g => g.CostUsd / g.Calls)!;
        return to.CostUsd / to.Calls < from.CostUsd / from.Calls ? (from.Key, to.Key, 0.5) : null;
    }

    public static string Triage(AgentBrief brief, IReadOnlyDictionary<string, JsonElement> results, DateTimeOffset now)
    {
        var request = brief.Request.ToLowerInvariant();
        var summary = AgentResults.Tool(results, "workload_summary", Json.WorkloadSummaryResult);
        var calls = summary?.Calls ?? 0;
        var reading = RequestReader.Read(brief.Request, summary, brief.Now ?? now, brief.Previous);
        var priority = ContainsAny(request, "urgent", "asap", "critical", "outage", "immediately") ? "high" : reading.Category is "cost" or "latency" ? "medium" : "low";
        var sufficiency = summary is null || calls == 0 ? DataSufficiency.Insufficient
            : calls < MinCallsForAnalysis ? DataSufficiency.Partial : DataSufficiency.Sufficient;
        var rationale = sufficiency switch
        {
            DataSufficiency.Insufficient => "No workload data has been uploaded yet.",
            DataSufficiency.Partial => $"Only {calls:0} calls are uploaded; at least {MinCallsForAnalysis} are needed for a reliable analysis.",
            _ => $"{calls:0} calls over {summary!.DaysCovered:0.##} days are enough to analyse.",
        };
        return JsonSerializer.Serialize(new TriageResult(reading.Category, priority, reading.Entities, sufficiency, rationale, reading.Intent), Json.TriageResult);
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

    public static string Data(AgentBrief brief, IReadOnlyDictionary<string, JsonElement> results)
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
            findings.Add($"{Markdown.Text(top.Key)} is the largest cost{(costs.GroupBy == "model" ? "" : $" by {costs.GroupBy}")}: ${Figures.Money(top.CostUsd)}, {top.Share * 100:0.#}% of spend.");
        if (latency is not null)
        {
            var slowest = latency.Models.FirstOrDefault();
            findings.Add($"Latency p50 {latency.Overall.P50Ms:0} ms, p95 {latency.Overall.P95Ms:0} ms, p99 {latency.Overall.P99Ms:0} ms" +
                         (slowest is null ? "." : $"; slowest at p95 is {Markdown.Text(slowest.Model)} ({slowest.P95Ms:0} ms)."));
        }
        if (errors is not null)
        {
            var worst = errors.Models.FirstOrDefault();
            findings.Add($"Error rate {errors.ErrorRate * 100:0.##}% ({errors.Errors:0} failed calls)" +
                         (worst is null || worst.Errors == 0 ? "." : $"; highest on {Markdown.Text(worst.Model)} at {worst.ErrorRate * 100:0.##}%."));
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
        var triage = AgentResults.Agent(brief.Results, AgentNames.Triage, Json.TriageResult);
        var scope = Answers.ScopeOf(triage);
        var headline = summary is null ? "No figures could be computed."
            : scope.Length > 0 ? $"For {scope}: ${Figures.Money(summary.TotalCostUsd)} on {summary.Calls:0} LLM calls (about ${Figures.Money(summary.MonthlyCostUsd)} a month)."
            : $"You spent ${Figures.Money(summary.TotalCostUsd)} on {summary.Calls:0} LLM calls (about ${Figures.Money(summary.MonthlyCostUsd)} a month).";
        var (answer, focus) = Answers.ForQuestion(triage, summary, costs, latency, errors, AgentResults.Tool(results, "token_efficiency", Json.TokenEfficiencyResult));
        return JsonSerializer.Serialize(new DataResult(headline, findings, notes, results, answer, focus), Json.DataResult);
    }

    /// <summary>Kinds of strategy that act on latency, listed first (in this order) for a latency request.</summary>
    public static readonly ImmutableArray<string> LatencyOrder = ["latency_routing", "caching", "streaming", "timeouts"];

    public static readonly FrozenSet<string> LatencyKinds = LatencyOrder.ToFrozenSet(StringComparer.Ordinal);

    public static string Optimization(AgentBrief brief, IReadOnlyDictionary<string, JsonElement> results)
    {
        var triage = AgentResults.Agent(brief.Results, AgentNames.Triage, Json.TriageResult);
        var figures = AgentResults.Agent(brief.Results, AgentNames.Data, Json.DataResult)?.Figures;
        var latency = figures is null ? null : AgentResults.Tool(figures, "latency_profile", Json.LatencyProfileResult);
        var forLatency = triage?.Category == "latency";
        var strategies = new List<SavingStrategy>();
        var notes = new List<string>();
        var whatIf = AgentResults.Tool(results, "routing_what_if", Json.RoutingWhatIfResult);
        var whatIfError = results.TryGetValue("routing_what_if", out var failed) ? AgentResults.ToolError(failed) : null;
        if (forLatency && latency is { Models.Count: >= 2 })
        {
            var (slow, fast) = (latency.Models[0], latency.Models[^1]);
            var cost = whatIf is null ? "" : whatIf.MonthlySavingsUsd >= 0 ? $" It also saves about ${Figures.Money(whatIf.MonthlySavingsUsd)}/month."
                : $" It costs about ${Figures.Money(-whatIf.MonthlySavingsUsd)}/month more.";
            strategies.Add(Strategy("latency_routing", $"Route latency-sensitive calls from {Markdown.Text(slow.Model)} to {Markdown.Text(fast.Model)}",
                $"{Markdown.Text(slow.Model)} is slowest at p95 ({slow.P95Ms:N0} ms over {slow.Calls:0} calls); {Markdown.Text(fast.Model)} answers at p95 in {fast.P95Ms:N0} ms. " +
                $"Send the interactive, simpler requests to {Markdown.Text(fast.Model)}.{cost}",
                Math.Max(0, whatIf?.MonthlySavingsUsd ?? 0), $"p95 {slow.P95Ms:N0} ms -> {fast.P95Ms:N0} ms for the calls moved",
                "The faster model may answer hard prompts worse: route by task type and compare quality on a sample first.", "medium"));
        }
        else if (whatIf is { MonthlySavingsUsd: > 0 } r)
        {
            strategies.Add(Strategy("routing", $"Route {r.Share * 100:0}% of {Markdown.Text(r.FromModel)} traffic to {Markdown.Text(r.ToModel)}",
                $"Send the simpler requests now handled by {Markdown.Text(r.FromModel)} to {Markdown.Text(r.ToModel)}: ${Figures.Money(r.CurrentCostUsd)} of observed cost becomes ${Figures.Money(r.ProjectedCostUsd)}.",
                r.MonthlySavingsUsd,
                r.ProjectedAvgLatencyMs is { } after ? $"mean latency {r.FromAvgLatencyMs:0} ms -> {after:0} ms" : "unknown",
                "The cheaper model may answer hard prompts worse: route by task type and compare quality on a sample first.", "medium"));
        }
        if (whatIfError is { } error) notes.Add($"Routing analysis was not available: {error.Error}");
        var repeats = AgentResults.Tool(results, "repeated_prompts", Json.RepeatedPromptsResult);
        if (repeats is { MonthlyCacheSavingsUsd: > 0 } || (forLatency && repeats is { RepeatCalls: > 0 }))
        {
            strategies.Add(Strategy("caching", "Cache responses to repeated prompts",
                $"{repeats!.RepeatCalls:0} calls ({repeats.RepeatRate * 100:0.#}%) repeat an earlier prompt exactly; serve them from a cache keyed by prompt hash and model.",
                repeats.MonthlyCacheSavingsUsd, "cache hits answer in milliseconds instead of seconds",
                "Cached answers can go stale: set a time-to-live and skip the cache for personalised prompts.", "high"));
        }
        if (forLatency && latency is not null)
        {
            var overall = latency.Overall;
            strategies.Add(Strategy("streaming", "Stream responses",
                $"Stream tokens as they are generated: people see the first words long before the whole answer, which takes {overall.P50Ms:N0} ms at p50 and {overall.P95Ms:N0} ms at p95.",
                0, "the wait people see drops to the time to the first token", "The client must render partial output; post-processing the whole answer waits for the end.", "high"));
            var fallback = latency.Models.Count >= 2 ? $" and retry once on {Markdown.Text(latency.Models[^1].Model)}" : " and retry once";
            strategies.Add(Strategy("timeouts", "Time out slow calls with a fallback",
                $"p99 is {overall.P99Ms:N0} ms against a p50 of {overall.P50Ms:N0} ms: cut calls off near p95 ({overall.P95Ms:N0} ms){fallback}.",
                0, $"caps the tail near {overall.P95Ms:N0} ms", "A retried call costs twice; a timeout too tight fails calls that would have succeeded.", "medium"));
        }
        if (AgentResults.Tool(results, "token_efficiency", Json.TokenEfficiencyResult) is { MonthlySavingsTrim20PctUsd: > 0 } tokens)
        {
            strategies.Add(Strategy("prompt_trimming", "Trim prompts by 20%",
                "Shorten system prompts and retrieved context (remove duplicated instructions, cap retrieved chunks); 20% fewer input tokens at today's volume.",
                tokens.MonthlySavingsTrim20PctUsd, "slightly faster (fewer input tokens)",
                "Over-trimmed context lowers answer quality: trim with an evaluation set.", "medium"));
        }
        // A latency request reads its latency strategies first; otherwise the biggest saving leads.
        strategies = forLatency
            ? [.. strategies.OrderBy(s => LatencyKinds.Contains(s.Kind) ? LatencyOrder.IndexOf(s.Kind) : LatencyOrder.Length).ThenByDescending(s => s.ProjectedMonthlySavingsUsd)]
            : [.. strategies.OrderByDescending(s => s.ProjectedMonthlySavingsUsd)];
        var total = Math.Round(strategies.Sum(s => s.ProjectedMonthlySavingsUsd), 2);
        var answer = Answers.ForAdvice(triage, brief.Tier, strategies, total, whatIf, whatIfError, latency);
        return JsonSerializer.Serialize(new OptimizationResult(strategies, total, notes, answer), Json.OptimizationResult);
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
                "latency_routing" => ["Mark the latency-sensitive request types (interactive chat, autocomplete).", "Behind a feature flag, send 10% of them to the faster model.", "Raise the share while quality and p95 hold."],
                "streaming" => ["Switch the client call to the streaming API.", "Render tokens as they arrive.", "Measure time to first token next to total latency."],
                "timeouts" => ["Set the client timeout near today's p95.", "On a timeout, retry once on the faster model.", "Alert when the retry rate passes 2%."],
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
