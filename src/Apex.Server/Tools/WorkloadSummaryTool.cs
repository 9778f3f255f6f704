using System.Text.Json;
using Apex.Server.Execution;
using Apex.Server.Storage;

namespace Apex.Server.Tools;

/// <summary>Totals of the user's uploaded workload: calls, errors, tokens, latency, models, time span.</summary>
internal sealed class WorkloadSummaryTool(IWorkloadStore store) : IApexTool
{
    public string Name => "workload_summary";

    public string Description => "Totals of the user's LLM usage data: number of calls, errors, tokens, mean latency, models and the time span covered. Call it first to learn whether there is data.";

    public JsonElement ParametersSchema { get; } = JsonDocument.Parse("""{"type":"object","properties":{},"additionalProperties":false}""").RootElement;

    public string RequiredTier => Tiers.Free;

    public async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var s = await store.GetWorkloadSummaryAsync(context.UserId, cancellationToken);
        var days = s.First is { } first && s.Last is { } last ? (last - first).TotalDays : 0;
        return JsonSerializer.SerializeToElement(new Dictionary<string, object?>
        {
            ["calls"] = s.Calls,
            ["errors"] = s.Errors,
            ["error_rate"] = s.Calls == 0 ? 0 : Math.Round((double)s.Errors / s.Calls, 4),
            ["prompt_tokens"] = s.PromptTokens,
            ["completion_tokens"] = s.CompletionTokens,
            ["avg_latency_ms"] = Math.Round(s.AvgLatencyMs, 1),
            ["total_cost_usd"] = Math.Round(s.Cost, 2),
            ["monthly_cost_usd"] = Math.Round(s.Cost * 30 / Math.Max(1, days), 2),
            ["models"] = s.Models,
            ["first_call"] = s.First,
            ["last_call"] = s.Last,
            ["days_covered"] = Math.Round(days, 2),
        }, ToolJson.Options);
    }
}
