using System.Text;
using System.Text.Json;

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
        var md = new StringBuilder();
        JsonElement? triage = results.TryGetValue(AgentNames.Triage, out var t) ? t : null;
        JsonElement? data = results.TryGetValue(AgentNames.Data, out var d) ? d : null;
        JsonElement? helper = results.TryGetValue(AgentNames.DataHelper, out var h) ? h : null;
        JsonElement? optimization = results.TryGetValue(AgentNames.Optimization, out var o) ? o : null;
        JsonElement? actions = results.TryGetValue(AgentNames.Actions, out var a) ? a : null;

        var full = data is not null && optimization is not null;
        md.AppendLine(full ? "# Workload optimization report" : data is not null ? "# Workload report (partial)" : "# Getting started with your workload analysis");
        md.AppendLine();
        if (triage.Text("category") is { } category)
            md.AppendLine($"Request: **{category.Replace('_', ' ')}** (priority {triage.Text("priority") ?? "medium"}).").AppendLine();

        if (data is not null)
        {
            md.AppendLine("## Headline figures").AppendLine();
            if (data.Text("summary") is { } summary) md.AppendLine(summary).AppendLine();
            foreach (var finding in data.Items("findings")) md.AppendLine($"- {finding.GetString()}");
            md.AppendLine();
        }

        if (optimization is not null)
        {
            var strategies = optimization.Items("strategies").ToList();
            md.AppendLine("## Top savings").AppendLine();
            if (strategies.Count == 0) md.AppendLine("No strategy with a measurable saving was found in this data.");
            foreach (var strategy in strategies)
            {
                JsonElement? s = strategy;
                md.AppendLine($"- **{s.Text("name")}**: about **${JsonRead.Money(s.Number("projected_monthly_savings_usd"))}/month**. {s.Text("description")} " +
                              $"Trade-off: {(s.Text("trade_offs") ?? "none noted").TrimEnd('.')}.");
            }
            md.AppendLine();
            md.AppendLine($"Total projected savings: **${JsonRead.Money(optimization.Number("total_projected_monthly_savings_usd"))}/month**.").AppendLine();
            foreach (var note in optimization.Items("notes")) md.AppendLine($"> {note.GetString()}").AppendLine();
        }

        if (actions is not null)
        {
            md.AppendLine("## Action plan").AppendLine();
            var n = 1;
            foreach (var action in actions.Items("actions"))
            {
                JsonElement? x = action;
                md.AppendLine($"{n++}. **{x.Text("title")}**: {string.Join(" ", x.Items("steps").Select(step => step.GetString()))} " +
                              $"Validate: {x.Text("validation")} Roll back: {x.Text("rollback")}");
            }
            md.AppendLine();
        }

        if (helper is not null)
        {
            md.AppendLine("## Data needed").AppendLine();
            md.AppendLine(helper.Text("message") ?? "More workload data is needed for a full analysis.").AppendLine();
            var missing = helper.Items("missing").Select(m => m.GetString()).ToList();
            foreach (var item in missing) md.AppendLine($"- {item}");
            if (missing.Count > 0) md.AppendLine();
            md.AppendLine($"Required columns: `{string.Join("`, `", helper.Items("required_columns").Select(c => c.GetString()))}`. " +
                          $"Optional: `{string.Join("`, `", helper.Items("optional_columns").Select(c => c.GetString()))}`.").AppendLine();
            if (helper.Text("how_to_upload") is { } how) md.AppendLine(how).AppendLine();
        }

        if (data is null && helper is null)
            md.AppendLine("The analysis could not complete. Upload your LLM usage with `POST /api/workloads` (CSV or JSONL, one row per model call) and ask again.").AppendLine();
        return md.ToString().TrimEnd() + "\n";
    }
}
