namespace Apex.Server.Storage;

/// <summary>
/// What the database tells this node that other nodes changed: events stored for a thread, runs that became
/// runnable or were freed, a cancellation requested for a run, a session revoked. Raised by <see cref="PostgresListener"/>; the event
/// bus and the run worker subscribe, so the storage layer never names them.
/// </summary>
internal sealed class StoreSignals
{
    public const string EventsChannel = "apex_events";
    public const string RunsChannel = "apex_runs";
    public const string CancelChannel = "apex_cancel";
    public const string SessionsChannel = "apex_sessions";

    /// <summary>A node that cannot reach Redis says so here (<c>NOTIFY</c> only), so that the others send it their wake-ups as <c>NOTIFY</c> too.</summary>
    public const string RedisFallbackChannel = "apex_redis_fallback";

    /// <summary>Another node stored events of this thread.</summary>
    public event Action<string>? EventsStored;

    /// <summary>A run was queued or ended somewhere: there may be work to claim.</summary>
    public event Action? RunsChanged;

    /// <summary>A cancellation was requested for a run (its id, the reason).</summary>
    public event Action<string, string>? CancelRequested;

    /// <summary>A session ended (logout, refresh-token reuse, a deleted API key): its open streams must close.</summary>
    public event Action<string>? SessionRevoked;

    /// <summary>Notifications may have been missed (the listener reconnected): look at the store again.</summary>
    public event Action? Resync;

    public void OnEventsStored(string threadId) => EventsStored?.Invoke(threadId);

    public void OnRunsChanged() => RunsChanged?.Invoke();

    public void OnCancelRequested(string runId, string reason) => CancelRequested?.Invoke(runId, reason);

    public void OnSessionRevoked(string sessionId) => SessionRevoked?.Invoke(sessionId);

    public void OnResync() => Resync?.Invoke();

    /// <summary>
    /// A notice as it arrives from another node, over <c>NOTIFY</c> or Redis alike: raises its signal, unless it is this node's
    /// own (which this node already raised in-process).
    /// </summary>
    public void Receive(string channel, string payload, string selfId)
    {
        switch (channel)
        {
            case EventsChannel:
                var parts = payload.Split('|');
                if (parts.Length == 3 && parts[0] != selfId) OnEventsStored(parts[1]);
                break;
            case RunsChannel:
                // This node woke its own worker when it queued or ended the run; only other nodes' changes need a claim.
                if (payload != selfId) OnRunsChanged();
                break;
            case CancelChannel:
                var cancel = payload.Split('|', 2);
                if (cancel.Length == 2) OnCancelRequested(cancel[0], cancel[1]);
                break;
            case SessionsChannel:
                var revoked = payload.Split('|', 2);
                if (revoked.Length == 2 && revoked[0] != selfId) OnSessionRevoked(revoked[1]);
                break;
        }
    }
}

/// <summary>One thing a write tells the other nodes: a channel of <see cref="StoreSignals"/> and its payload.</summary>
internal readonly record struct Notice(string Channel, string Payload);
