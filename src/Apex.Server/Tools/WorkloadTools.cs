using System.Text.Json;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Tools;

/// <summary>Shared pieces of the workload tools: schemas, rounding, and the monthly projection factor.</summary>
internal abstract class WorkloadTool(IWorkloadStore store) : IApexTool
{
    protected IWorkloadStore Store { get; } = store;

    public abstract string Name { get; }
    public abstract string Description { get; }
    public virtual JsonElement ParametersSchema { get; } = Schema("""{"type":"object","properties":{},"additionalProperties":false}""");
    public virtual string RequiredTier => Tiers.Free;

    public abstract Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken);

    protected static JsonElement Schema(string json) => JsonDocument.Parse(json).RootElement.Clone();

    protected static JsonElement Result(Dictionary<string, object?> value) => JsonSerializer.SerializeToElement(value, ToolJson.Options);

    protected static double Usd(double value) => Math.Round(value, 2);

    /// <summary>Days the data covers (at least one), to scale observed cost to a 30-day month.</summary>
    protected async Task<double> DaysCoveredAsync(string userId, CancellationToken cancellationToken)
    {
        var summary = await Store.GetWorkloadSummaryAsync(userId, cancellationToken);
        return summary.First is { } first && summary.Last is { } last ? Math.Max(1, (last - first).TotalDays) : 1;
    }

    protected static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? 0 : sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];
}

internal sealed class CostBreakdownTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "cost_breakdown";
    public override string Description => "Cost of the user's LLM calls grouped by model, day, feature or team, with each group's share of the total.";
    public override JsonElement ParametersSchema { get; } = Schema("""{"type":"object","properties":{"group_by":{"type":"string","enum":["model","day","feature","team"]}},"additionalProperties":false}""");

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var groupBy = arguments.TryGetProperty("group_by", out var g) ? g.GetString()! : "model";
        var groups = await Store.GetCostBreakdownAsync(context.UserId, groupBy, cancellationToken);
        var total = groups.Sum(x => x.Cost);
        var days = await DaysCoveredAsync(context.UserId, cancellationToken);
        return Result(new()
        {
            ["group_by"] = groupBy,
            ["total_cost_usd"] = Usd(total),
            ["monthly_cost_usd"] = Usd(total * 30 / days),
            ["groups"] = groups.Select(x => new Dictionary<string, object?>
            {
                ["key"] = x.Key, ["calls"] = x.Calls, ["cost_usd"] = Usd(x.Cost), ["share"] = total == 0 ? 0 : Math.Round(x.Cost / total, 4),
            }).ToList(),
        });
    }
}

internal sealed class LatencyProfileTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "latency_profile";
    public override string Description => "Latency percentiles (p50, p95, p99, nearest rank) and mean per model, in milliseconds.";

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var byModel = await Store.GetLatenciesByModelAsync(context.UserId, cancellationToken);
        var all = byModel.Values.SelectMany(v => v).Order().ToArray();
        return Result(new()
        {
            ["overall"] = Profile(all),
            ["models"] = byModel.OrderByDescending(m => Percentile(m.Value, 95)).Select(m => new Dictionary<string, object?>(Profile(m.Value)) { ["model"] = m.Key }).ToList(),
        });
    }

    private static Dictionary<string, object?> Profile(double[] sorted) => new()
    {
        ["calls"] = sorted.Length,
        ["p50_ms"] = Math.Round(Percentile(sorted, 50), 1),
        ["p95_ms"] = Math.Round(Percentile(sorted, 95), 1),
        ["p99_ms"] = Math.Round(Percentile(sorted, 99), 1),
        ["mean_ms"] = sorted.Length == 0 ? 0 : Math.Round(sorted.Average(), 1),
    };
}

internal sealed class ErrorAnalysisTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "error_analysis";
    public override string Description => "Failed calls: overall error rate, error rate per model, and the most frequent error statuses.";

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var models = await Store.GetModelStatsAsync(context.UserId, cancellationToken);
        var statuses = await Store.GetErrorCountsAsync(context.UserId, cancellationToken);
        var calls = models.Sum(m => m.Calls);
        var errors = models.Sum(m => m.Errors);
        return Result(new()
        {
            ["calls"] = calls,
            ["errors"] = errors,
            ["error_rate"] = calls == 0 ? 0 : Math.Round((double)errors / calls, 4),
            ["models"] = models.OrderByDescending(m => (double)m.Errors / Math.Max(1, m.Calls)).Select(m => new Dictionary<string, object?>
            {
                ["model"] = m.Model, ["calls"] = m.Calls, ["errors"] = m.Errors, ["error_rate"] = Math.Round((double)m.Errors / Math.Max(1, m.Calls), 4),
            }).ToList(),
            ["statuses"] = statuses.GroupBy(s => s.Status).Select(g => new Dictionary<string, object?> { ["status"] = g.Key, ["calls"] = g.Sum(s => s.Calls) })
                .OrderByDescending(s => (long)s["calls"]!).ToList(),
        });
    }
}

internal sealed class RepeatedPromptsTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "repeated_prompts";
    public override string Description => "Identical prompts (same prompt_hash and model) sent more than once: the caching opportunity, with the cost of the repeats.";

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var repeated = await Store.GetRepeatedPromptsAsync(context.UserId, cancellationToken);
        var okCalls = (await Store.GetModelStatsAsync(context.UserId, cancellationToken)).Sum(m => m.Calls - m.Errors);
        var repeatCalls = repeated.Sum(r => r.Calls - 1);
        // A cache would keep one call per prompt; every other call's cost is what it saves.
        var repeatCost = repeated.Sum(r => r.Cost - r.FirstCallCost);
        var days = await DaysCoveredAsync(context.UserId, cancellationToken);
        return Result(new()
        {
            ["distinct_repeated_prompts"] = repeated.Count,
            ["repeat_calls"] = repeatCalls,
            ["repeat_rate"] = okCalls == 0 ? 0 : Math.Round((double)repeatCalls / okCalls, 4),
            ["repeat_cost_usd"] = Usd(repeatCost),
            ["monthly_cache_savings_usd"] = Usd(repeatCost * 30 / days),
            ["top"] = repeated.Take(5).Select(r => new Dictionary<string, object?> { ["prompt_hash"] = r.PromptHash, ["model"] = r.Model, ["calls"] = r.Calls, ["cost_usd"] = Usd(r.Cost) }).ToList(),
        });
    }
}

internal sealed class TokenEfficiencyTool(IWorkloadStore store, IOptions<WorkloadOptions> options) : WorkloadTool(store)
{
    public override string Name => "token_efficiency";
    public override string Description => "Tokens per call per model, the share of cost spent on prompt (input) tokens, and what trimming prompts by 20% would save a month.";

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var models = await Store.GetModelStatsAsync(context.UserId, cancellationToken);
        var days = await DaysCoveredAsync(context.UserId, cancellationToken);
        var rows = models.Select(m =>
        {
            var inputCost = options.Value.CostOf(m.Model, m.PromptTokens, 0);
            return new Dictionary<string, object?>
            {
                ["model"] = m.Model,
                ["avg_prompt_tokens"] = Math.Round((double)m.PromptTokens / Math.Max(1, m.Calls), 1),
                ["avg_completion_tokens"] = Math.Round((double)m.CompletionTokens / Math.Max(1, m.Calls), 1),
                ["input_cost_usd"] = inputCost is null ? null : Usd(inputCost.Value),
                ["monthly_savings_trim_20pct_usd"] = inputCost is null ? null : Usd(inputCost.Value * 0.2 * 30 / days),
            };
        }).ToList();
        return Result(new()
        {
            ["models"] = rows,
            ["monthly_savings_trim_20pct_usd"] = Usd(rows.Sum(r => (double?)r["monthly_savings_trim_20pct_usd"] ?? 0)),
        });
    }
}

internal sealed class RoutingWhatIfTool(IWorkloadStore store, IOptions<WorkloadOptions> options) : WorkloadTool(store)
{
    public override string Name => "routing_what_if";
    public override string Description => "Projects cost and latency if a share of one model's traffic moved to another model, priced from the price table (or the target's observed cost per token).";
    public override string RequiredTier => Tiers.Pro;
    public override JsonElement ParametersSchema { get; } = Schema("""
        {"type":"object","properties":{"from_model":{"type":"string"},"to_model":{"type":"string"},"share":{"type":"number","minimum":0,"maximum":1}},
         "required":["from_model","to_model"],"additionalProperties":false}
        """);

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var fromName = arguments.GetProperty("from_model").GetString()!;
        var toName = arguments.GetProperty("to_model").GetString()!;
        var share = arguments.TryGetProperty("share", out var s) ? s.GetDouble() : 0.5;
        var models = await Store.GetModelStatsAsync(context.UserId, cancellationToken);
        var from = models.FirstOrDefault(m => m.Model == fromName) ?? throw new ToolException($"No calls to '{fromName}' in the data. Models: {string.Join(", ", models.Select(m => m.Model))}.");
        var to = models.FirstOrDefault(m => m.Model == toName);
        var movedPrompt = from.PromptTokens * share;
        var movedCompletion = from.CompletionTokens * share;
        double projected;
        if (options.Value.Prices.TryGetValue(toName, out var price)) projected = (movedPrompt * price.Input + movedCompletion * price.Output) / 1_000_000;
        else if (to is { } observed && observed.PromptTokens + observed.CompletionTokens > 0) projected = observed.Cost / (observed.PromptTokens + observed.CompletionTokens) * (movedPrompt + movedCompletion);
        else throw new ToolException($"'{toName}' has no price in the price table and no calls in the data to price it from.");
        var current = from.Cost * share;
        var days = await DaysCoveredAsync(context.UserId, cancellationToken);
        var latencyAfter = to is null ? (double?)null : Math.Round((1 - share) * from.AvgLatencyMs + share * to.AvgLatencyMs, 1);
        return Result(new()
        {
            ["from_model"] = fromName,
            ["to_model"] = toName,
            ["share"] = share,
            ["moved_calls"] = (long)Math.Round(from.Calls * share),
            ["current_cost_usd"] = Usd(current),
            ["projected_cost_usd"] = Usd(projected),
            ["savings_usd"] = Usd(current - projected),
            ["monthly_savings_usd"] = Usd((current - projected) * 30 / days),
            ["from_avg_latency_ms"] = Math.Round(from.AvgLatencyMs, 1),
            ["projected_avg_latency_ms"] = latencyAfter,
        });
    }
}

internal sealed class AnomaliesTool(IWorkloadStore store) : WorkloadTool(store)
{
    public override string Name => "anomalies";
    public override string Description => "Hours whose cost is far from the norm (more than three standard deviations above the hourly mean).";
    public override string RequiredTier => Tiers.Pro;

    public override async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var hours = await Store.GetHourlyCostAsync(context.UserId, cancellationToken);
        var mean = hours.Count == 0 ? 0 : hours.Average(h => h.Cost);
        var std = hours.Count < 2 ? 0 : Math.Sqrt(hours.Sum(h => (h.Cost - mean) * (h.Cost - mean)) / (hours.Count - 1));
        var anomalies = std == 0 ? [] : hours.Where(h => (h.Cost - mean) / std > 3).OrderByDescending(h => h.Cost).Take(10).ToList();
        return Result(new()
        {
            ["hours"] = hours.Count,
            ["mean_hourly_cost_usd"] = Math.Round(mean, 4),
            ["stddev_hourly_cost_usd"] = Math.Round(std, 4),
            ["anomalies"] = anomalies.Select(h => new Dictionary<string, object?>
            {
                ["hour"] = h.Hour, ["calls"] = h.Calls, ["cost_usd"] = Usd(h.Cost), ["z_score"] = Math.Round((h.Cost - mean) / std, 2),
            }).ToList(),
        });
    }
}
