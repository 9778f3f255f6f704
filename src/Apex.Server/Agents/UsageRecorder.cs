using Apex.Client;
using Apex.Server.Execution;
using Apex.Server.Storage;

namespace Apex.Server.Agents;

/// <summary>
/// Stores what a run's model calls used (one row per agent and model, priced from the same table as workloads) and
/// sums it for the run's terminal event. Once per run, whatever way it ends; a failure to store is logged, never the run's.
/// </summary>
internal sealed partial class UsageRecorder(RunUsage usage, IUsageStore store, WorkloadOptions prices, TimeProvider time, ILogger logger)
{
    private int _recorded;

    public async Task<RunUsageSummary?> RecordAsync(RunRecord run)
    {
        var rows = usage.Snapshot();
        if (rows.Count == 0 || Interlocked.Exchange(ref _recorded, 1) == 1) return null;
        var now = time.GetUtcNow();
        var records = rows.Select(r => new ModelUsageRecord(run.UserId, run.Id, r.Agent, r.Model, r.Calls, r.Input, r.Output, r.CachedInput, r.Reasoning,
            r.Model == BuiltInChatClient.ModelId ? 0 : prices.CostOf(r.Model, r.Input, r.Output), now)).ToList();
        try
        {
            await store.RecordModelUsageAsync(records, CancellationToken.None);
        }
        catch (Exception ex)
        {
            LogUsageNotStored(logger, ex, run.Id);
        }
        var models = records.GroupBy(r => r.Model).Select(g => new ModelUsageFigure(g.Key, g.Sum(r => r.Calls), g.Sum(r => r.InputTokens), g.Sum(r => r.OutputTokens),
            g.Sum(r => r.CachedTokens), g.Sum(r => r.ReasoningTokens), g.All(r => r.Cost is null) ? null : Math.Round(g.Sum(r => r.Cost ?? 0), 6))).ToList();
        return new RunUsageSummary(models.Sum(m => m.InputTokens), models.Sum(m => m.OutputTokens), models.Sum(m => m.CachedInputTokens), models.Sum(m => m.ReasoningTokens),
            models.All(m => m.CostUsd is null) ? null : Math.Round(models.Sum(m => m.CostUsd ?? 0), 6), models);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "The model usage of run {RunId} could not be stored")]
    private static partial void LogUsageNotStored(ILogger logger, Exception exception, string runId);
}
