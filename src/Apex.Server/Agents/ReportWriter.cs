using System.Text;
using System.Text.Json;
using Apex.Client;

namespace Apex.Server.Agents;

/// <summary>
/// Writes the final markdown answer from the agents' structured results, using only figures present in them. It leads with
/// the direct answer (the data agent's, and the optimization agent's recommendation when the person asked what to do), then
/// the detail the request is about. A greeting gets a short answer and no report. It is the built-in model's reporting voice
/// and the fallback that keeps reporting from ever failing when a real model does.
/// </summary>
internal static class ReportWriter
{
    public static string Write(IReadOnlyDictionary<string, JsonElement> results)
    {
        var json = ApexJsonContext.Default;
        var md = new StringBuilder();
        var triage = AgentResults.Agent(results, AgentNames.Triage, json.TriageResult);
        var data = AgentResults.Agent(results, AgentNames.Data, json.DataResult);
        var helper = AgentResults.Agent(results, AgentNames.DataHelper, json.DataHelperResult);
        var optimization = AgentResults.Agent(results, AgentNames.Optimization, json.OptimizationResult);
        var actions = AgentResults.Agent(results, AgentNames.Actions, json.ActionsResult);
        if (triage is not null && Routing.IntentOf(triage) == Intents.Greeting && data is null && helper is null) return Greeting(triage);

        var lead = Lead(triage, data, optimization, helper);
        if (lead is not null) md.AppendLine(lead).AppendLine();

        if (data is not null && optimization is null && helper is null)
        {
            // A focused question: the answer above, then the figures behind it.
            md.AppendLine("## Details").AppendLine();
            foreach (var finding in data.Findings ?? []) md.AppendLine($"- {finding}");
            foreach (var note in data.Notes ?? []) md.AppendLine($"- Not available: {note}");
            return md.ToString().TrimEnd() + "\n";
        }

        var full = data is not null && optimization is not null;
        md.AppendLine(full ? "# Workload optimization report" : data is not null ? "# Workload report (partial)" : "# Getting started with your workload analysis");
        md.AppendLine();
        if (triage?.Category is { } category)
            md.AppendLine($"Request: **{category.Replace('_', ' ')}** (priority {triage.Priority ?? "medium"}).").AppendLine();

        var strategies = optimization?.Strategies ?? [];
        if (triage?.Category == "latency" && data?.Figures is { } figures && AgentResults.Tool(figures, "latency_profile", json.LatencyProfileResult) is { } latency)
        {
            md.AppendLine("## Latency").AppendLine();
            md.AppendLine($"Overall: p50 {latency.Overall.P50Ms:N0} ms, p95 {latency.Overall.P95Ms:N0} ms, p99 {latency.Overall.P99Ms:N0} ms over {latency.Overall.Calls:N0} calls (nearest rank).").AppendLine();
            foreach (var m in latency.Models) md.AppendLine($"- {Markdown.Text(m.Model)}: p50 {m.P50Ms:N0} ms, p95 {m.P95Ms:N0} ms, p99 {m.P99Ms:N0} ms ({m.Calls:N0} calls)");
            md.AppendLine();
            var fixes = strategies.Where(s => BuiltInAgents.LatencyKinds.Contains(s.Kind)).ToList();
            if (fixes.Count > 0)
            {
                md.AppendLine("## Latency strategies").AppendLine();
                foreach (var s in fixes) md.AppendLine($"- **{s.Name}**: {s.LatencyImpact}. {s.Description} Trade-off: {(s.TradeOffs ?? "none noted").TrimEnd('.')}.");
                md.AppendLine();
            }
        }

        if (data is not null)
        {
            md.AppendLine("## Headline figures").AppendLine();
            if (data.Summary is { } summary) md.AppendLine(summary).AppendLine();
            foreach (var finding in data.Findings ?? []) md.AppendLine($"- {finding}");
            md.AppendLine();
        }

        if (optimization is not null)
        {
            var savings = strategies.Where(s => s.ProjectedMonthlySavingsUsd > 0 || triage?.Category != "latency").ToList();
            md.AppendLine("## Top savings").AppendLine();
            if (savings.Count == 0) md.AppendLine("No strategy with a measurable saving was found in this data.");
            foreach (var s in savings)
            {
                md.AppendLine($"- **{s.Name}**: about **${Figures.Money(s.ProjectedMonthlySavingsUsd)}/month**. {s.Description} " +
                              $"Trade-off: {(s.TradeOffs ?? "none noted").TrimEnd('.')}.");
            }
            md.AppendLine();
            md.AppendLine($"Total projected savings: **${Figures.Money(optimization.TotalProjectedMonthlySavingsUsd)}/month**.").AppendLine();
            foreach (var note in optimization.Notes ?? []) md.AppendLine($"> {note}").AppendLine();
        }
        if (actions is not null)
        {
            md.AppendLine("## Action plan").AppendLine();
            var n = 1;
            foreach (var x in actions.Actions ?? [])
            {
                md.AppendLine($"{n++}. **{x.Title}**: {string.Join(" ", x.Steps ?? [])} Validate: {x.Validation} Roll back: {x.Rollback}");
            }
            md.AppendLine();
        }

        if (helper is not null)
        {
            md.AppendLine("## Data needed").AppendLine();
            md.AppendLine(helper.Message ?? "More workload data is needed for a full analysis.").AppendLine();
            var missing = helper.Missing ?? [];
            foreach (var item in missing) md.AppendLine($"- {item}");
            if (missing.Count > 0) md.AppendLine();
            md.AppendLine($"Required columns: `{string.Join("`, `", helper.RequiredColumns ?? [])}`. " +
                          $"Optional: `{string.Join("`, `", helper.OptionalColumns ?? [])}`.").AppendLine();
            if (helper.HowToUpload is { } how) md.AppendLine(how).AppendLine();
        }

        if (data is null && helper is null)
            md.AppendLine("The analysis could not complete. Upload your LLM usage with `POST /api/workloads` (CSV or JSONL, one row per model call) and ask again.").AppendLine();
        return md.ToString().TrimEnd() + "\n";
    }

    /// <summary>The first paragraph: what was asked, answered. For a model choice the what-if leads; for advice the recommendation follows the figure.</summary>
    private static string? Lead(TriageResult? triage, DataResult? data, OptimizationResult? optimization, DataHelperResult? helper)
    {
        var answer = data?.Answer ?? data?.Summary;
        var advice = optimization?.Answer;
        var lead = triage?.Category == "model_selection" && advice is not null ? $"{advice} {answer}".Trim()
            : answer is not null ? $"{answer}{(advice is null ? "" : " " + advice)}"
            : helper?.Message;
        if (lead is not null && data is not null && helper is not null && triage?.DataSufficiency == DataSufficiency.Partial)
            lead += $" {helper.Message}";
        return lead;
    }

    /// <summary>Hello, what can you do: a few sentences on what Apex does with the user's data and what to upload. No report.</summary>
    private static string Greeting(TriageResult triage)
    {
        var data = triage.DataSufficiency switch
        {
            DataSufficiency.Insufficient => "You have no data uploaded yet: send a CSV or JSONL file with one row per model call (timestamp, provider, model, prompt_tokens, " +
                                           "completion_tokens, latency_ms, status; optionally cost, prompt_hash, feature, team) to `POST /api/workloads`, or try `POST /api/workloads/sample`.",
            _ => $"About your data: {triage.Rationale ?? "it is uploaded."}",
        };
        return "Hello! I'm Apex. I answer questions about your own LLM usage data: cost by model, feature, team or day, latency (p50, p95, p99), error rates, " +
               "tokens and repeated prompts, and, when you ask, what to change to cut cost or latency, with savings computed from your data.\n\n" +
               data + "\n\n" +
               "Try: \"Which model is slowest at p95?\", \"What did the chat feature cost last week?\" or \"How do I cut my costs?\"\n";
    }
}
