using System.Text.Json;
using Apex.Client;
using Apex.Server.Execution;
using Apex.Server.Storage;

namespace Apex.Server.Tools;

/// <summary>Totals of the user's uploaded workload: calls, errors, tokens, latency, models, time span.</summary>
internal sealed class WorkloadSummaryTool(IWorkloadStore store) : IApexTool
{
    public string Name => "workload_summary";

    public string Description => "Totals of the user's LLM usage data: number of calls, errors, tokens, mean latency, cost, the time span covered, and the models, providers, " +
        "features and teams in it. Call it first to learn whether there is data and what it names; filter it for one model, feature, team or time window.";

    public JsonElement ParametersSchema { get; } = JsonDocument.Parse($$"""{"type":"object","properties":{{{WorkloadTool.FilterProperties}}},"additionalProperties":false}""").RootElement.Clone();

    public string RequiredTier => Tiers.Free;

    public async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var s = await store.GetWorkloadSummaryAsync(context.UserId, WorkloadTool.Filter(arguments), cancellationToken);
        var days = s.First is { } first && s.Last is { } last ? (last - first).TotalDays : 0;
        return JsonSerializer.SerializeToElement(new WorkloadSummaryResult(s.Calls, s.Errors, s.Calls == 0 ? 0 : Math.Round((double)s.Errors / s.Calls, 4),
            s.PromptTokens, s.CompletionTokens, Math.Round(s.AvgLatencyMs, 1), Math.Round(s.Cost, 2), Math.Round(s.Cost * 30 / Math.Max(1, days), 2), s.Models,
            s.First, s.Last, Math.Round(days, 2), s.Providers, s.Features, s.Teams), ApexJsonContext.Default.WorkloadSummaryResult);
    }
}
