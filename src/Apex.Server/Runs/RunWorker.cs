using System.Collections.Concurrent;
using System.Threading.Channels;
using Apex.Server.Agents;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Runs;

/// <summary>
/// Claims runnable runs and executes them, each on its own task, owning their cancellation
/// (a run outlives the request that started it). Keeps the leases of its runs alive, picks up
/// cancellations requested through the store, and ends the runs of dead nodes honestly.
/// </summary>
internal sealed partial class RunWorker(ExecutionEngineFactory factory, RunRecovery recovery, IRunStore store, IApprovalStore approvals, Database database, StoreSignals signals,
    NodeIdentity node, TimeProvider time, IOptions<LimitsOptions> limits, ILogger<RunWorker> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<string, (ExecutionEngine Engine, Task Task)> _active = new();
    // Cancels that arrived for a run this node had claimed but not registered yet (or that runs elsewhere), kept for one lease.
    private readonly Dictionary<string, (string Reason, DateTimeOffset At)> _earlyCancels = [];
    private readonly Lock _gate = new();
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
    private volatile bool _accepting = true;

    public int ActiveCount => _active.Count;

    /// <summary>Something became runnable: look for work now rather than at the next poll.</summary>
    public void Wake() => _wake.Writer.TryWrite(true);

    /// <summary>Cancels a run if this node is running it.</summary>
    public bool TryCancelLocal(string runId, string reason)
    {
        lock (_gate)
        {
            if (_active.TryGetValue(runId, out var active))
            {
                active.Engine.Control.Cancel(reason);
                return true;
            }
            // Claimed a moment ago and not registered yet: registration applies it (otherwise only the next heartbeat would).
            var now = time.GetUtcNow();
            foreach (var (id, early) in _earlyCancels.ToList())
                if (now - early.At > limits.Value.RunLease) _earlyCancels.Remove(id);
            _earlyCancels[runId] = (reason, now);
            return false;
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Other nodes' submissions, freed runs and cancellations reach this node through the store's signals.
        signals.RunsChanged += Wake;
        signals.Resync += Wake;
        signals.CancelRequested += (runId, reason) => TryCancelLocal(runId, reason);
        // A single-node database has no other node that could still own a running run: every one left is from a previous process.
        await recovery.RecoverOrphansAsync(all: !database.SupportsCluster, reason: database.SupportsCluster ? "node_lost" : "server_restart", stoppingToken);
        using var heartbeat = new PeriodicTimer(limits.Value.HeartbeatInterval, time);
        var heartbeats = HeartbeatLoopAsync(heartbeat, stoppingToken);
        Wake();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await ClaimWhatFitsAsync(stoppingToken);
                using var poll = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
                // Other nodes' submissions only reach us through the store: poll as a fallback to being woken.
                poll.CancelAfter(limits.Value.HeartbeatInterval);
                try { await _wake.Reader.ReadAsync(poll.Token); }
                catch (OperationCanceledException) when (!stoppingToken.IsCancellationRequested) { }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        await heartbeats;
    }

    private async Task ClaimWhatFitsAsync(CancellationToken stoppingToken)
    {
        while (_accepting && _active.Count < limits.Value.MaxConcurrentRunsPerNode)
        {
            ExecutionEngine? engine;
            try
            {
                engine = await factory.ClaimNextAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogClaimFailed(logger, ex);
                return;
            }
            if (engine is null) return;
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var task = RunAsync(engine, gate.Task);
            lock (_gate)
            {
                _active[engine.RunId] = (engine, task);
                if (_earlyCancels.Remove(engine.RunId, out var early)) engine.Control.Cancel(early.Reason);
            }
            gate.SetResult();
        }
    }

    private async Task RunAsync(ExecutionEngine engine, Task registered)
    {
        await registered;
        try
        {
            await Task.Run(engine.RunAsync, CancellationToken.None);
        }
        finally
        {
            _active.TryRemove(engine.RunId, out _);
            engine.Dispose();
            Wake();
        }
    }

    private async Task HeartbeatLoopAsync(PeriodicTimer timer, CancellationToken stoppingToken)
    {
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    var now = time.GetUtcNow();
                    var cancelRequested = await store.RenewLeasesAsync(node.Id, _active.Keys.ToList(), now + limits.Value.RunLease, stoppingToken);
                    foreach (var runId in cancelRequested) TryCancelLocal(runId, CancelReasons.User);
                    // Approvals nobody answered in time are rejected (expired); their runs are queued again, to resume here or anywhere.
                    if (await approvals.ExpireAsync(now, stoppingToken) > 0) Wake();
                    if (database.SupportsCluster)
                    {
                        // Runs ended here free their threads' queues; this node ignores its own notifications, so it wakes itself.
                        if (await recovery.RecoverOrphansAsync(all: false, reason: "node_lost", stoppingToken) > 0) Wake();
                    }
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogHeartbeatFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Stops claiming, lets active runs finish up to the drain timeout, then cancels the rest honestly.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _accepting = false;
        var running = _active.Values.Select(a => a.Task).ToArray();
        if (running.Length > 0)
        {
            LogDraining(logger, running.Length, limits.Value.DrainTimeout.TotalSeconds);
            var drained = Task.WhenAll(running);
            if (await Task.WhenAny(drained, Task.Delay(limits.Value.DrainTimeout, time, cancellationToken)) != drained)
            {
                foreach (var (engine, _) in _active.Values) engine.Control.Cancel(CancelReasons.Shutdown);
                await Task.WhenAny(drained, Task.Delay(TimeSpan.FromSeconds(5), time, CancellationToken.None));
            }
        }
        await base.StopAsync(cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Claiming a run failed")]
    private static partial void LogClaimFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Renewing run leases failed")]
    private static partial void LogHeartbeatFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shutting down: draining {Count} active runs for up to {Seconds} s")]
    private static partial void LogDraining(ILogger logger, int count, double seconds);
}
