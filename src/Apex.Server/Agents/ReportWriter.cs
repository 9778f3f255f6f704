using System.Text;
using System.Text.Json;
using Apex.Client;

namespace Apex.Server.Agents;

/// <summary>
/// Writes the final markdown report from the agents' structured results, using only figures
/// present in them. It is the built-in model's reporting voice and the fallback that keeps
/// reporting from ever failing when a real model does.
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

        var full = data is not null && optimization is not null;
        md.AppendLine(full ? "# Workload optimization report" : data is not null ? "# Workload report (partial)" : "# Getting started with your workload analysis");
        md.AppendLine();
        if (triage?.Category is { } category)
            md.AppendLine($"Request: **{category.Replace('_', ' ')}** (priority {triage.Priority ?? "medium"}).").AppendLine();

        if (data is not null)
        {
            md.AppendLine("## Headline figures").AppendLine();
            if (data.Summary is { } summary) md.AppendLine(summary).AppendLine();
            foreach (var finding in data.Findings ?? []) md.AppendLine($"- {finding}");
            md.AppendLine();
        }

        if (optimization is not null)
        {
            var strategies = optimization.Strategies ?? [];
            md.AppendLine("## Top savings").AppendLine();
            if (strategies.Count == 0) md.AppendLine("No strategy with a measurable saving was found in this data.");
            foreach (var s in strategies)
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
}
