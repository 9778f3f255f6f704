using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Apex.Client;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Tools;

/// <summary>Shared pieces of the workload tools: schemas, filters, rounding, and the monthly projection factor.</summary>
internal abstract class WorkloadTool(IWorkloadStore store) : IApexTool
{
    /// <summary>The filter arguments every workload tool takes (JSON schema properties, without the braces).</summary>
    public const string FilterProperties = """
        "model":{"type":"string","description":"Only calls to this model (exact name, as workload_summary lists it)"},
        "feature":{"type":"string","description":"Only calls of this feature"},
        "team":{"type":"string","description":"Only calls of this team"},
        "from":{"type":"string","format":"date-time","description":"Only calls at or after this time (ISO 8601)"},
        "to":{"type":"string","format":"date-time","description":"Only calls before this time (ISO 8601)"}
        """;

    protected IWorkloadStore Store { get; } = store;

    public abstract string Name { get; }
    public abstract string Description { get; }
    public virtual JsonElement ParametersSchema { get; } = Schema($$"""{"type":"object","properties":{{{FilterProperties}}},"additionalProperties":false}""");
    public virtual string RequiredTier => Tiers.Free;

    public abstract Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken);

    protected static JsonElement Schema(string json) => JsonDocument.Parse(json).RootElement.Clone();

    protected static JsonElement Result<T>(T value, JsonTypeInfo<T> type) => JsonSerializer.SerializeToElement(value, type);

    protected static double Usd(double value) => Math.Round(value, 2);

    /// <summary>
    /// Days the data covers (at least one), to scale observed cost to a 30-day month: the span of all the user's calls,
    /// or of those in the filter's time window (a feature's monthly cost is over the same period as everyone's).
    /// </summary>
    protected async Task<double> DaysCoveredAsync(string userId, WorkloadFilter filter, CancellationToken cancellationToken)
    {
        var summary = await Store.GetWorkloadSummaryAsync(userId, filter.Window, cancellationToken);
        return summary.First is { } first && summary.Last is { } last ? Math.Max(1, (last - first).TotalDays) : 1;
    }

    /// <summary>The filter arguments; the dispatcher has already checked their types and formats against the schema.</summary>
    public static WorkloadFilter Filter(JsonElement arguments) => new(
        Text(arguments, "model"), Text(arguments, "feature"), Text(arguments, "team"), Time(arguments, "from"), Time(arguments, "to"));

    private static string? Text(JsonElement arguments, string name) =>
        arguments.ValueKind == JsonValueKind.Object && arguments.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static DateTimeOffset? Time(JsonElement arguments, string name) =>
        Text(arguments, name) is not { } text ? null
        : SchemaValidator.TryParseDateTime(text, out var time) ? time
        : throw new ToolException($"'{name}' must be an ISO 8601 date or date-time.");

    protected static double Percentile(double[] sorted, double p) => NearestRank.Percentile(sorted, p);
}

/// <summary>Percentiles by nearest rank over sorted values: the one definition the tools and the charts share.</summary>
internal static class NearestRank
{
    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];
}

internal sealed class CostBreakdownTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "cost_breakdown";
    public override string Description => "Cost of the user's LLM calls grouped by model, day, feature or team, with each group's share of the total.";
    public override JsonElement ParametersSchema { get; } = Schema($$"""{"type":"object","properties":{"group_by":{"type":"string","enum":["model","day","feature","team"]},{{FilterProperties}}},"additionalProperties":false}""");

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var groupBy = arguments.TryGetProperty("group_by", out var g) ? g.GetString()! : "model";
        var filter = Filter(arguments);
        var groups = await Store.GetCostBreakdownAsync(context.UserId, groupBy, filter, cancellationToken);
        var total = groups.Sum(x => x.Cost);
        var days = await DaysCoveredAsync(context.UserId, filter, cancellationToken);
        return Result(new CostBreakdownResult(groupBy, Usd(total), Usd(total * 30 / days),
            [.. groups.Select(x => new CostGroupFigure(x.Key, x.Calls, Usd(x.Cost), total == 0 ? 0 : Math.Round(x.Cost / total, 4)))]),
            ApexJsonContext.Default.CostBreakdownResult);
    }
}

internal sealed class LatencyProfileTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "latency_profile";
    public override string Description => "Latency percentiles (p50, p95, p99, nearest rank) and mean per model, in milliseconds.";

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var byModel = await Store.GetLatenciesByModelAsync(context.UserId, Filter(arguments), cancellationToken);
        var all = byModel.Values.SelectMany(v => v).Order().ToArray();
        return Result(new LatencyProfileResult(Profile(all),
            [.. byModel.OrderByDescending(m => Percentile(m.Value, 95)).Select(m => ForModel(m.Key, Profile(m.Value)))]),
            ApexJsonContext.Default.LatencyProfileResult);
    }

    private static ModelLatency ForModel(string model, LatencyFigures p) => new(model, p.Calls, p.P50Ms, p.P95Ms, p.P99Ms, p.MeanMs);

    private static LatencyFigures Profile(double[] sorted) => new(sorted.Length, Math.Round(Percentile(sorted, 50), 1), Math.Round(Percentile(sorted, 95), 1),
        Math.Round(Percentile(sorted, 99), 1), sorted.Length == 0 ? 0 : Math.Round(sorted.Average(), 1));
}

internal sealed class ErrorAnalysisTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "error_analysis";
    public override string Description => "Failed calls: overall error rate, error rate per model, and the most frequent error statuses.";

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var filter = Filter(arguments);
        var models = await Store.GetModelStatsAsync(context.UserId, filter, cancellationToken);
        var statuses = await Store.GetErrorCountsAsync(context.UserId, filter, cancellationToken);
        var calls = models.Sum(m => m.Calls);
        var errors = models.Sum(m => m.Errors);
        return Result(new ErrorAnalysisResult(calls, errors, calls == 0 ? 0 : Math.Round((double)errors / calls, 4),
            [.. models.OrderByDescending(m => (double)m.Errors / Math.Max(1, m.Calls)).Select(m => new ModelErrors(m.Model, m.Calls, m.Errors, Math.Round((double)m.Errors / Math.Max(1, m.Calls), 4)))],
            [.. statuses.GroupBy(s => s.Status).Select(g => new StatusCount(g.Key, g.Sum(s => s.Calls))).OrderByDescending(s => s.Calls)]),
            ApexJsonContext.Default.ErrorAnalysisResult);
    }
}

internal sealed class RepeatedPromptsTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "repeated_prompts";
    public override string Description => "Identical prompts (same prompt_hash and model) sent more than once: the caching opportunity, with the cost of the repeats.";

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var filter = Filter(arguments);
        var repeated = await Store.GetRepeatedPromptsAsync(context.UserId, filter, cancellationToken);
        var okCalls = (await Store.GetModelStatsAsync(context.UserId, filter, cancellationToken)).Sum(m => m.Calls - m.Errors);
        var repeatCalls = repeated.Sum(r => r.Calls - 1);
        // A cache would keep one call per prompt; every other call's cost is what it saves.
        var repeatCost = repeated.Sum(r => r.Cost - r.FirstCallCost);
        var days = await DaysCoveredAsync(context.UserId, filter, cancellationToken);
        return Result(new RepeatedPromptsResult(repeated.Count, repeatCalls, okCalls == 0 ? 0 : Math.Round((double)repeatCalls / okCalls, 4), Usd(repeatCost),
            Usd(repeatCost * 30 / days), [.. repeated.Take(5).Select(r => new RepeatedPromptFigure(r.PromptHash, r.Model, r.Calls, Usd(r.Cost)))]),
            ApexJsonContext.Default.RepeatedPromptsResult);
    }
}

internal sealed class TokenEfficiencyTool(IWorkloadStore store, IOptions<WorkloadOptions> options) : WorkloadTool(store)
{
    public override string Name => "token_efficiency";
    public override string Description => "Tokens per call per model, the share of cost spent on prompt (input) tokens, and what trimming prompts by 20% would save a month.";

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var filter = Filter(arguments);
        var models = await Store.GetModelStatsAsync(context.UserId, filter, cancellationToken);
        var days = await DaysCoveredAsync(context.UserId, filter, cancellationToken);
        var rows = models.Select(m =>
        {
            var inputCost = options.Value.CostOf(m.Model, m.PromptTokens, 0);
            return new ModelTokens(m.Model, Math.Round((double)m.PromptTokens / Math.Max(1, m.Calls), 1), Math.Round((double)m.CompletionTokens / Math.Max(1, m.Calls), 1),
                inputCost is null ? null : Usd(inputCost.Value), inputCost is null ? null : Usd(inputCost.Value * 0.2 * 30 / days));
        }).ToList();
        return Result(new TokenEfficiencyResult(rows, Usd(rows.Sum(r => r.MonthlySavingsTrim20PctUsd ?? 0))), ApexJsonContext.Default.TokenEfficiencyResult);
    }
}

internal sealed class RoutingWhatIfTool(IWorkloadStore store, IOptions<WorkloadOptions> options) : WorkloadTool(store)
{
    public override string Name => "routing_what_if";
    public override string Description => "Projects cost and latency if a share of one model's traffic (optionally of one feature or team, in a time window) moved to another model, " +
        "priced from the price table (or the target's observed cost per token).";
    public override string RequiredTier => Tiers.Pro;
    public override JsonElement ParametersSchema { get; } = Schema($$"""
        {"type":"object","properties":{"from_model":{"type":"string"},"to_model":{"type":"string"},"share":{"type":"number","minimum":0,"maximum":1},
          {{FilterProperties[FilterProperties.IndexOf("\"feature\"", StringComparison.Ordinal)..]}}},
         "required":["from_model","to_model"],"additionalProperties":false}
        """);

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var fromName = arguments.GetProperty("from_model").GetString()!;
        var toName = arguments.GetProperty("to_model").GetString()!;
        var share = arguments.TryGetProperty("share", out var s) ? s.GetDouble() : 0.5;
        // The traffic moved is from_model's within the filter; the target's observed price and latency are over the same calls' scope.
        var filter = Filter(arguments) with { Model = null };
        var models = await Store.GetModelStatsAsync(context.UserId, filter, cancellationToken);
        var from = models.FirstOrDefault(m => m.Model == fromName) ?? throw new ToolException($"No calls to '{fromName}' in the data. Models: {string.Join(", ", models.Select(m => m.Model))}.");
        var to = models.FirstOrDefault(m => m.Model == toName);
        var movedPrompt = from.PromptTokens * share;
        var movedCompletion = from.CompletionTokens * share;
        double projected;
        if (options.Value.Prices.TryGetValue(toName, out var price)) projected = (movedPrompt * price.Input + movedCompletion * price.Output) / 1_000_000;
        else if (to is { } observed && observed.PromptTokens + observed.CompletionTokens > 0) projected = observed.Cost / (observed.PromptTokens + observed.CompletionTokens) * (movedPrompt + movedCompletion);
        else throw new ToolException($"'{toName}' has no price in the price table and no calls in the data to price it from.");
        var current = from.Cost * share;
        var days = await DaysCoveredAsync(context.UserId, filter, cancellationToken);
        var latencyAfter = to is null ? (double?)null : Math.Round((1 - share) * from.AvgLatencyMs + share * to.AvgLatencyMs, 1);
        return Result(new RoutingWhatIfResult(fromName, toName, share, (long)Math.Round(from.Calls * share), Usd(current), Usd(projected), Usd(current - projected),
            Usd((current - projected) * 30 / days), Math.Round(from.AvgLatencyMs, 1), latencyAfter), ApexJsonContext.Default.RoutingWhatIfResult);
    }
}

internal sealed class AnomaliesTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "anomalies";
    public override string Description => "Hours whose cost is far from the norm (more than three standard deviations above the hourly mean).";
    public override string RequiredTier => Tiers.Pro;

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var hours = await Store.GetHourlyCostAsync(context.UserId, Filter(arguments), cancellationToken);
        var mean = hours.Count == 0 ? 0 : hours.Average(h => h.Cost);
        var std = hours.Count < 2 ? 0 : Math.Sqrt(hours.Sum(h => (h.Cost - mean) * (h.Cost - mean)) / (hours.Count - 1));
        var anomalies = std == 0 ? [] : hours.Where(h => (h.Cost - mean) / std > 3).OrderByDescending(h => h.Cost).Take(10).ToList();
        return Result(new AnomaliesResult(hours.Count, Math.Round(mean, 4), Math.Round(std, 4),
            [.. anomalies.Select(h => new CostAnomaly(h.Hour, h.Calls, Usd(h.Cost), Math.Round((h.Cost - mean) / std, 2)))]), ApexJsonContext.Default.AnomaliesResult);
    }
}
