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
}
