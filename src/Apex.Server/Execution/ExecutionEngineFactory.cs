using Apex.Server.Agents;
using Apex.Server.Hosting;
using Apex.Server.Storage;
using Apex.Server.Streaming;
using Apex.Server.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace Apex.Server.Execution;

/// <summary>
/// The only way to make an engine. It claims the next runnable run in the store, where the
/// per-user active-run limit is enforced in the claim itself (so it holds across nodes), and
/// wires that run's context, event writer, tool dispatcher and agents.
/// </summary>
internal sealed class ExecutionEngineFactory(IApexStore store, EventLog log, ToolRegistry tools, AgentRegistry agents, IChatClient chat,
    IdGenerator ids, TimeProvider time, IOptions<LimitsOptions> limits, NodeIdentity node, ILoggerFactory loggers)
{
    public async Task<ExecutionEngine?> ClaimNextAsync(CancellationToken cancellationToken)
    {
        var options = limits.Value;
        var now = time.GetUtcNow();
        var run = await store.ClaimNextRunAsync(node.Id, options.MaxActiveRunsPerUser, now, now + options.RunLease, cancellationToken);
        if (run is null) return null;
        var tier = (await store.GetUserAsync(run.UserId, cancellationToken))?.Tier ?? Tiers.Free;
        return Create(run, tier, now);
    }

    /// <summary>Wires one claimed run: its context, event writer, tool dispatcher, agent runner and engine.</summary>
    internal ExecutionEngine Create(RunRecord run, string tier, DateTimeOffset now)
    {
        var options = limits.Value;
        var control = new RunControl(options.RunTimeout, time);
        var context = UserExecutionContext.Create(run.UserId, run.ThreadId, run.Id, tier, now, control.Token);
        var events = new RunEvents(context, log);
        var dispatcher = new ToolDispatcher(tools, events, options, loggers.CreateLogger<ToolDispatcher>());
        var runner = new AgentRunner(chat, tools, dispatcher, events, options, loggers.CreateLogger<AgentRunner>());
        return new ExecutionEngine(run, context, control, events, runner, agents, store, ids, time, node.Id, loggers.CreateLogger<ExecutionEngine>());
    }
}

/// <summary>This process's id among the nodes sharing a database.</summary>
internal sealed class NodeIdentity
{
    public string Id { get; } = $"{Environment.MachineName}-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..6]}";
}
