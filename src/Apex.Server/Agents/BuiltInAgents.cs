using System.Text.Json;
using Apex.Server.Tools;

namespace Apex.Server.Agents;

/// <summary>
/// The built-in model's reasoning for each agent: deterministic rules over the brief and the
/// tool results. Every figure it writes is read from a tool result, never made up.
/// </summary>
internal static class BuiltInAgents
{
    /// <summary>Calls below this count are too few for a reliable analysis.</summary>
    public const int MinCallsForAnalysis = 200;

    /// <summary>
    /// The tool calls the built-in model makes for the tools it is offered: all of them, with arguments chosen from the
    /// brief. A tool whose arguments it cannot choose (the routing what-if with fewer than two models) is not called.
    /// </summary>
    public static List<(string Tool, Dictionary<string, object?> Arguments)> PlanToolCalls(IEnumerable<string> offered, JsonElement brief)
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
                default:
                    calls.Add((tool, new()));
                    break;
            }
        }
        return calls;
    }

    /// <summary>From the data agent's figures: the model with the highest spend, and the one with the lowest cost per call.</summary>
    private static (string From, string To)? RoutingCandidates(JsonElement brief)
    {
        var groups = brief.Get("results").Get(AgentNames.Data).Get("figures").Get("cost_breakdown").Items("groups")
            .Select(g => (JsonElement?)g)
            .Select(g => (Model: g.Text("key")!, Cost: g.Number("cost_usd"), Calls: g.Number("calls")))
            .Where(g => g.Model is not null && g.Calls > 0).ToList();
        if (groups.Count < 2) return null;
        var from = groups.MaxBy(g => g.Cost);
        var to = groups.Where(g => g.Model != from.Model).MinBy(g => g.Cost / g.Calls);
        return to.Cost / to.Calls < from.Cost / from.Calls ? (from.Model, to.Model) : null;
    }

    public static string Triage(JsonElement brief, IReadOnlyDictionary<string, JsonElement> results)
    {
        var request = (brief.Text("request") ?? "").ToLowerInvariant();
        JsonElement? summary = results.TryGetValue("workload_summary", out var s) ? s : null;
        var calls = summary.Number("calls");
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
        var models = summary.Items("models").Select(m => m.GetString()!).Where(m => request.Contains(m.ToLowerInvariant(), StringComparison.Ordinal)).ToList();
        string[] metricWords = ["cost", "latency", "p95", "p99", "tokens", "errors", "throughput"];
        var metrics = metricWords.Where(w => request.Contains(w, StringComparison.Ordinal)).ToList();
        var constraints = new List<string>();
        if (ContainsAny(request, "without losing quality", "keep quality", "same quality")) constraints.Add("keep quality");
        if (ContainsAny(request, "budget")) constraints.Add("budget");
        var sufficiency = summary is null || summary.Get("error") is not null || calls == 0 ? DataSufficiency.Insufficient
            : calls < MinCallsForAnalysis ? DataSufficiency.Partial : DataSufficiency.Sufficient;
        return Serialize(new()
        {
            ["category"] = category,
            ["priority"] = priority,
            ["entities"] = new Dictionary<string, object?> { ["models"] = models, ["metrics"] = metrics, ["constraints"] = constraints },
            ["data_sufficiency"] = sufficiency,
            ["rationale"] = sufficiency switch
            {
                DataSufficiency.Insufficient => "No workload data has been uploaded yet.",
                DataSufficiency.Partial => $"Only {calls:0} calls are uploaded; at least {MinCallsForAnalysis} are needed for a reliable analysis.",
                _ => $"{calls:0} calls over {summary.Number("days_covered"):0.##} days are enough to analyse.",
            },
        });
    }

    public static string DataHelper(IReadOnlyDictionary<string, JsonElement> results)
    {
        JsonElement? summary = results.TryGetValue("workload_summary", out var s) ? s : null;
        var calls = summary.Number("calls");
        var missing = new List<string>();
        if (calls == 0) missing.Add("Any LLM usage data: no calls are uploaded yet.");
        else if (calls < MinCallsForAnalysis) missing.Add($"More calls: {calls:0} uploaded, at least {MinCallsForAnalysis} needed (ideally a week or more of traffic).");
        if (calls > 0 && summary.Number("days_covered") < 1) missing.Add("A longer time span: the data covers less than a day, so daily patterns cannot be seen.");
        return Serialize(new()
        {
            ["status"] = calls == 0 ? "no_data" : "too_little_data",
            ["calls_found"] = calls,
            ["message"] = calls == 0
                ? "I can't analyse your workload yet: no LLM usage data has been uploaded for your account."
                : $"I found {calls:0} calls in your data, which is too little for reliable savings figures.",
            ["missing"] = missing,
            ["required_columns"] = new[] { "timestamp", "provider", "model", "prompt_tokens", "completion_tokens", "latency_ms", "status" },
            ["optional_columns"] = new[] { "cost", "prompt_hash", "feature", "team", "error" },
            ["how_to_upload"] = "Upload a CSV or JSONL file with one row per model call to `POST /api/workloads` (or try `POST /api/workloads/sample` for a realistic sample), then ask again.",
        });
    }

    public static string Data(IReadOnlyDictionary<string, JsonElement> results)
    {
        JsonElement? Result(string tool) => results.TryGetValue(tool, out var r) && r.Get("error") is null ? r : null;
        var summary = Result("workload_summary");
        var costs = Result("cost_breakdown");
        var latency = Result("latency_profile");
        var errors = Result("error_analysis");
        var repeats = Result("repeated_prompts");
        var anomalies = Result("anomalies");
        var findings = new List<string>();
        var notes = new List<string>();
        if (summary is not null)
            findings.Add($"{summary.Number("calls"):0} calls over {summary.Number("days_covered"):0.#} days across {summary.Items("models").Count()} models cost " +
                         $"${JsonRead.Money(summary.Number("total_cost_usd"))} (about ${JsonRead.Money(summary.Number("monthly_cost_usd"))} a month).");
        if (costs?.Items("groups").FirstOrDefault() is { ValueKind: JsonValueKind.Object } top)
        {
            JsonElement? t = top;
            findings.Add($"{t.Text("key")} is the largest cost: ${JsonRead.Money(t.Number("cost_usd"))}, {t.Number("share") * 100:0.#}% of spend.");
        }
        if (latency is not null)
        {
            var slowest = latency.Items("models").Select(m => (JsonElement?)m).FirstOrDefault();
            findings.Add($"Latency p50 {latency.Get("overall").Number("p50_ms"):0} ms, p95 {latency.Get("overall").Number("p95_ms"):0} ms, p99 {latency.Get("overall").Number("p99_ms"):0} ms" +
                         (slowest is null ? "." : $"; slowest at p95 is {slowest.Text("model")} ({slowest.Number("p95_ms"):0} ms)."));
        }
        if (errors is not null)
        {
            var worst = errors.Items("models").Select(m => (JsonElement?)m).FirstOrDefault();
            findings.Add($"Error rate {errors.Number("error_rate") * 100:0.##}% ({errors.Number("errors"):0} failed calls)" +
                         (worst is null || worst.Number("errors") == 0 ? "." : $"; highest on {worst.Text("model")} at {worst.Number("error_rate") * 100:0.##}%."));
        }
        if (repeats is not null)
            findings.Add($"{repeats.Number("repeat_rate") * 100:0.#}% of successful calls repeat an earlier prompt; the repeats cost ${JsonRead.Money(repeats.Number("repeat_cost_usd"))}.");
        if (anomalies is not null)
        {
            var list = anomalies.Items("anomalies").Select(a => (JsonElement?)a).ToList();
            findings.Add(list.Count == 0 ? "No hour's cost is far from the norm."
                : $"{list.Count} hour(s) cost far more than usual; the worst, {list[0].Text("hour")}, cost ${JsonRead.Money(list[0].Number("cost_usd"))} (z = {list[0].Number("z_score"):0.#}).");
        }
        foreach (var (tool, result) in results)
            if (result.Get("error") is not null) notes.Add($"{tool}: {result.Text("error")}");
        return Serialize(new()
        {
            ["summary"] = summary is null ? "No figures could be computed."
                : $"You spent ${JsonRead.Money(summary.Number("total_cost_usd"))} on {summary.Number("calls"):0} LLM calls (about ${JsonRead.Money(summary.Number("monthly_cost_usd"))} a month).",
            ["findings"] = findings,
            ["notes"] = notes,
            ["figures"] = results,
        });
    }

    public static string Optimization(JsonElement brief, IReadOnlyDictionary<string, JsonElement> results)
    {
        JsonElement? Result(string tool) => results.TryGetValue(tool, out var r) && r.Get("error") is null ? r : null;
        var strategies = new List<Dictionary<string, object?>>();
        var notes = new List<string>();
        if (Result("routing_what_if") is { } routing && routing.Number("monthly_savings_usd") > 0)
        {
            JsonElement? r = routing;
            strategies.Add(Strategy("routing", $"Route {r.Number("share") * 100:0}% of {r.Text("from_model")} traffic to {r.Text("to_model")}",
                $"Send the simpler requests now handled by {r.Text("from_model")} to {r.Text("to_model")}: ${JsonRead.Money(r.Number("current_cost_usd"))} of observed cost becomes ${JsonRead.Money(r.Number("projected_cost_usd"))}.",
                r.Number("monthly_savings_usd"),
                r.Get("projected_avg_latency_ms") is null ? "unknown" : $"mean latency {r.Number("from_avg_latency_ms"):0} ms -> {r.Number("projected_avg_latency_ms"):0} ms",
                "The cheaper model may answer hard prompts worse: route by task type and compare quality on a sample first.", "medium"));
        }
        else if (results.TryGetValue("routing_what_if", out var denied) && denied.Get("error") is not null)
        {
            notes.Add($"Routing analysis was not available: {denied.Text("error")}");
        }
        if (Result("repeated_prompts") is { } repeats && repeats.Number("monthly_cache_savings_usd") > 0)
        {
            JsonElement? r = repeats;
            strategies.Add(Strategy("caching", "Cache responses to repeated prompts",
                $"{r.Number("repeat_calls"):0} calls ({r.Number("repeat_rate") * 100:0.#}%) repeat an earlier prompt exactly; serve them from a cache keyed by prompt hash and model.",
                r.Number("monthly_cache_savings_usd"), "cache hits answer in milliseconds instead of seconds",
                "Cached answers can go stale: set a time-to-live and skip the cache for personalised prompts.", "high"));
        }
        if (Result("token_efficiency") is { } tokens && tokens.Number("monthly_savings_trim_20pct_usd") > 0)
        {
            JsonElement? t = tokens;
            strategies.Add(Strategy("prompt_trimming", "Trim prompts by 20%",
                "Shorten system prompts and retrieved context (remove duplicated instructions, cap retrieved chunks); 20% fewer input tokens at today's volume.",
                t.Number("monthly_savings_trim_20pct_usd"), "slightly faster (fewer input tokens)",
                "Over-trimmed context lowers answer quality: trim with an evaluation set.", "medium"));
        }
        strategies.Sort((a, b) => ((double)b["projected_monthly_savings_usd"]!).CompareTo((double)a["projected_monthly_savings_usd"]!));
        return Serialize(new()
        {
            ["strategies"] = strategies,
            ["total_projected_monthly_savings_usd"] = Math.Round(strategies.Sum(s => (double)s["projected_monthly_savings_usd"]!), 2),
            ["notes"] = notes,
        });
    }

    private static Dictionary<string, object?> Strategy(string kind, string name, string description, double savings, string latency, string tradeOffs, string confidence) => new()
    {
        ["kind"] = kind,
        ["name"] = name,
        ["description"] = description,
        ["projected_monthly_savings_usd"] = Math.Round(savings, 2),
        ["latency_impact"] = latency,
        ["trade_offs"] = tradeOffs,
        ["confidence"] = confidence,
    };

    public static string Actions(JsonElement brief)
    {
        var strategies = brief.Get("results").Get(AgentNames.Optimization).Items("strategies");
        var actions = strategies.Select(s =>
        {
            JsonElement? x = s;
            string[] steps = x.Text("kind") switch
            {
                "routing" => ["Tag requests by task type (classification, extraction, chat).", "Behind a feature flag, send the simple types to the cheaper model for 10% of traffic.", "Raise the share step by step while quality holds."],
                "caching" => ["Put a cache keyed by (model, prompt hash) in front of the model client.", "Start with a 24-hour time-to-live.", "Exclude prompts that contain user-specific data."],
                "prompt_trimming" => ["Measure prompt tokens per feature.", "Remove repeated instructions and cap retrieved context.", "Re-run the evaluation set before shipping each cut."],
                _ => [x.Text("description") ?? ""],
            };
            return new Dictionary<string, object?>
            {
                ["title"] = x.Text("name"),
                ["steps"] = steps,
                ["validation"] = "Compare cost, p95 latency, error rate and a quality sample for a week against the week before.",
                ["rollback"] = "Turn the feature flag off; the previous path keeps working meanwhile.",
                ["expected_savings_usd"] = x.Number("projected_monthly_savings_usd"),
            };
        }).ToList();
        return Serialize(new() { ["actions"] = actions });
    }

    private static bool ContainsAny(string text, params string[] words) => words.Any(w => text.Contains(w, StringComparison.Ordinal));

    private static string Serialize(Dictionary<string, object?> value) => JsonSerializer.Serialize(value, ToolJson.Options);
}
