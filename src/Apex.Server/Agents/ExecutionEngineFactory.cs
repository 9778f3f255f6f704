using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Apex.Server.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace Apex.Server.Agents;

/// <summary>
/// The only way to make an engine. It claims the next runnable run in the store, where the
/// per-user active-run limit is enforced in the claim itself (so it holds across nodes), and
/// wires that run's context, event writer, tool dispatcher and agents.
/// </summary>
internal sealed class ExecutionEngineFactory(IAccountStore accounts, IThreadStore threads, IRunStore runs, IUsageStore usageStore, IOptions<WorkloadOptions> prices, EventLog log, ApexTelemetry telemetry, ToolRegistry tools, AgentCatalog catalog, IChatClient chat,
    IdGenerator ids, TimeProvider time, IOptions<LimitsOptions> limits, BudgetLedger budgets, NodeIdentity node, IApprovalStore approvals, IOptions<ApprovalOptions> approvalOptions,
    ILoggerFactory loggers)
{
    public async Task<ExecutionEngine?> ClaimNextAsync(CancellationToken cancellationToken)
    {
        var options = limits.Value;
        var now = time.GetUtcNow();
        var run = await runs.ClaimNextRunAsync(node.Id, options.MaxActiveRunsPerUser, now, now + options.RunLease, cancellationToken);
        if (run is null) return null;
        var user = await accounts.GetUserAsync(run.UserId, cancellationToken);
        var tier = user?.Tier ?? Tiers.Free;
        return Create(run, tier, now, user is null ? null : await budgets.StandingAsync(user, now, cancellationToken));
    }

    /// <summary>Wires one claimed run: its context, event writer, tool dispatcher, agent runner and engine.</summary>
    internal ExecutionEngine Create(RunRecord run, string tier, DateTimeOffset now, BudgetStanding? standing = null)
    {
        var options = limits.Value;
        var control = new RunControl(options.RunTimeout, time);
        var context = UserExecutionContext.Create(run.UserId, run.ThreadId, run.Id, tier, now);
        // A run whose own events cannot be stored stops at once (its event writer has already ended it with storage_error).
        var events = new RunEvents(run.UserId, run.ThreadId, run.Id, log, () => control.Cancel(RunEvents.StorageError), options.MessageDeltaWindow, time);
        var dispatcher = new ToolDispatcher(tools, events, control, telemetry, options, loggers.CreateLogger<ToolDispatcher>());
        var usage = new RunUsage();
        var recorder = new UsageRecorder(usage, usageStore, prices.Value, time, loggers.CreateLogger<UsageRecorder>());
        var budget = standing is { MonthlyTokens: null, MonthlyCostUsd: null } or null ? null
            : new RunBudget(standing, usage, (model, input, output) => model == BuiltInChatClient.ModelId ? 0 : prices.Value.CostOf(model, input, output) ?? 0);
        var runner = new AgentRunner(chat, tools, dispatcher, events, usage, budget, telemetry, options, loggers.CreateLogger<AgentRunner>());
        return new ExecutionEngine(run, context, control, events, runner, recorder, telemetry, catalog, threads, runs, approvals, approvalOptions.Value, ids, time, node.Id, loggers.CreateLogger<ExecutionEngine>());
    }
}
