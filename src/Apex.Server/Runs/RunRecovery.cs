using Apex.Client;
using Apex.Server.Storage;
using Apex.Server.Events;

namespace Apex.Server.Runs;

/// <summary>
/// Ends runs whose node is gone (a crash, a restart, a lost node): every tool call and agent it
/// left open is closed, then the run fails with the reason. No run stays <c>running</c>.
/// </summary>
internal sealed partial class RunRecovery(IRunStore store, IEventStore events, EventLog log, TimeProvider time, NodeIdentity node,
    Microsoft.Extensions.Options.IOptions<Execution.LimitsOptions> limits, ILogger<RunRecovery> logger)
{
    public async Task<int> RecoverOrphansAsync(bool all, string reason, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var orphans = await store.FindOrphanedRunsAsync(now, all, cancellationToken);
        var recovered = 0;
        foreach (var run in orphans)
        {
            // Only one node recovers a run, and it holds the run's lease meanwhile.
            if (!await store.TryTakeOverRunAsync(run.Id, node.Id, now, now + limits.Value.RunLease, ignoreLease: all, cancellationToken)) continue;
            recovered++;
            var stored = await events.ReadRunEventsAsync(run.UserId, run.Id, cancellationToken);
            if (stored.Any(e => e.IsTerminal)) continue;
            var openTools = stored.OfType<ToolExecuting>().Select(e => e.Data.CallId)
                .Except(stored.OfType<ToolCompleted>().Select(e => e.Data.CallId)).ToHashSet();
            var openAgents = new List<string>();
            foreach (var e in stored)
            {
                if (e is AgentStarted s) openAgents.Add(s.Data.Agent);
                else if (e is AgentCompleted c) openAgents.Remove(c.Data.Agent);
            }
            ApexEvent Stamp(ApexEvent e, string? agent) => e with { ThreadId = run.ThreadId, RunId = run.Id, UserId = run.UserId, AgentName = agent };
            var message = reason == "server_restart" ? "The server restarted while this run was active." : "The node running this run stopped responding.";
            foreach (var call in stored.OfType<ToolExecuting>().Where(e => openTools.Contains(e.Data.CallId)).Reverse())
                await log.AppendAsync(Stamp(new ToolCompleted(new ToolCompletedData(call.Data.CallId, call.Data.Tool, "error", 0, null, message)), call.AgentName), cancellationToken);
            foreach (var agent in Enumerable.Reverse(openAgents))
                await log.AppendAsync(Stamp(new AgentCompleted(new AgentCompletedData(agent, "error", 0, null)), agent), cancellationToken);
            var terminal = await log.AppendAsync(Stamp(new RunFailed(new RunFailedData(reason, message)), null), RunStatus.Running, cancellationToken);
            if (terminal is not null) LogRecovered(logger, run.Id, reason);
        }
        return recovered;
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Run {RunId} ended as failed ({Reason})")]
    private static partial void LogRecovered(ILogger logger, string runId, string reason);
}
