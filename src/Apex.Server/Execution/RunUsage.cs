using Microsoft.Extensions.AI;

namespace Apex.Server.Execution;

/// <summary>The tokens a run's model calls used, per agent and model, as the provider reported them.</summary>
internal sealed class RunUsage
{
    private readonly Lock _gate = new();
    private readonly Dictionary<(string Agent, string Model), Counts> _byAgentAndModel = [];

    public void Add(string agent, string model, UsageDetails usage)
    {
        lock (_gate)
        {
            var key = (agent, model);
            var counts = _byAgentAndModel.GetValueOrDefault(key) ?? new Counts();
            counts.Calls++;
            counts.Input += usage.InputTokenCount ?? 0;
            counts.Output += usage.OutputTokenCount ?? 0;
            counts.CachedInput += usage.CachedInputTokenCount ?? 0;
            counts.Reasoning += usage.ReasoningTokenCount ?? 0;
            _byAgentAndModel[key] = counts;
        }
    }

    public IReadOnlyList<(string Agent, string Model, int Calls, long Input, long Output, long CachedInput, long Reasoning)> Snapshot()
    {
        lock (_gate)
            return [.. _byAgentAndModel.Select(p => (p.Key.Agent, p.Key.Model, p.Value.Calls, p.Value.Input, p.Value.Output, p.Value.CachedInput, p.Value.Reasoning))];
    }

    private sealed class Counts
    {
        public int Calls;
        public long Input, Output, CachedInput, Reasoning;
    }
}
