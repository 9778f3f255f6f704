using System.Text.Json;
using Apex.Server.Agents;
using Apex.Server.Tools;

namespace Apex.Server.Llm;

/// <summary>
/// The built-in model's reasoning for each agent: deterministic rules over the brief and the
/// tool results. Every figure it writes is read from a tool result, never made up.
/// </summary>
internal static class BuiltInAgents
{
    /// <summary>Calls below this count are too few for a reliable analysis.</summary>
    public const int MinCallsForAnalysis = 200;

    public static Dictionary<string, object?>? ArgumentsFor(string tool, JsonElement brief) => null;

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
        JsonElement? summary = results.TryGetValue("workload_summary", out var s) ? s : null;
        var findings = new List<string>();
        if (summary is not null)
        {
            findings.Add($"{summary.Number("calls"):0} calls over {summary.Number("days_covered"):0.##} days across {summary.Items("models").Count()} models.");
            findings.Add($"{summary.Number("prompt_tokens"):0} prompt tokens and {summary.Number("completion_tokens"):0} completion tokens.");
            findings.Add($"Error rate {summary.Number("error_rate") * 100:0.##}% ({summary.Number("errors"):0} failed calls); mean latency {summary.Number("avg_latency_ms"):0.#} ms.");
        }
        return Serialize(new()
        {
            ["summary"] = summary is null ? "No figures could be computed." : $"Your workload: {summary.Number("calls"):0} calls.",
            ["findings"] = findings,
            ["figures"] = results,
        });
    }

    public static string Optimization(JsonElement brief, IReadOnlyDictionary<string, JsonElement> results) =>
        Serialize(new() { ["strategies"] = Array.Empty<object>(), ["total_projected_monthly_savings_usd"] = 0 });

    public static string Actions(JsonElement brief)
    {
        var strategies = brief.Get("results").Get(AgentNames.Optimization).Items("strategies");
        var actions = strategies.Select(s =>
        {
            JsonElement? x = s;
            return new Dictionary<string, object?>
            {
                ["title"] = x.Text("name"),
                ["steps"] = new[] { x.Text("description") },
                ["validation"] = "Compare cost, latency and error rate for a week against the week before.",
                ["rollback"] = "Revert the configuration change; the previous setup keeps working meanwhile.",
                ["expected_savings_usd"] = x.Number("projected_monthly_savings_usd"),
            };
        }).ToList();
        return Serialize(new() { ["actions"] = actions });
    }

    private static bool ContainsAny(string text, params string[] words) => words.Any(w => text.Contains(w, StringComparison.Ordinal));

    private static string Serialize(Dictionary<string, object?> value) => JsonSerializer.Serialize(value, ToolJson.Options);
}
