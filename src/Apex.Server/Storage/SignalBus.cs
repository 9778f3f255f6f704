namespace Apex.Server.Storage;

/// <summary>
/// The cluster's signal bus: how a write's notices (<see cref="Notice"/>: events stored, runs changed, a cancel, a revoked session)
/// reach the other nodes. Chosen at start-up: <see cref="NotifySignalBus"/> (PostgreSQL's <c>NOTIFY</c>, sent inside the writing
/// transaction) unless <c>Apex:Redis:Configuration</c> is set, then <see cref="RedisSignalBus"/>, which publishes after commit and
/// falls back to <c>NOTIFY</c> while Redis is unreachable. Every node keeps listening for <c>NOTIFY</c> either way
/// (<see cref="PostgresListener"/>), so a notice sent either way is heard; followers read events by seq from the database, so a
/// wake-up heard twice duplicates nothing.
/// </summary>
internal abstract class SignalBus
{
    /// <summary>Whether a write starting now sends its notices as <c>NOTIFY</c> inside its transaction (delivered on commit).</summary>
    public abstract bool NotifiesInTransaction { get; }

    /// <summary>Whether this node cannot reach the bus and must tell the others (over <c>NOTIFY</c>) to send it <c>NOTIFY</c>.</summary>
    public virtual bool FallingBack => false;

    /// <summary>What carries the wake-ups now (<c>notify</c> or <c>redis</c>), for <c>/readyz</c>.</summary>
    public abstract string Carrier { get; }

    /// <summary>Sends a committed write's notices; false when they could not be sent (the caller sends them as <c>NOTIFY</c>).</summary>
    public virtual Task<bool> PublishAsync(IReadOnlyList<Notice> notices, CancellationToken cancellationToken) => Task.FromResult(false);

    /// <summary>Another node announced that it cannot reach the bus.</summary>
    public virtual void PeerFallingBack(string nodeId)
    {
    }
}

/// <summary>PostgreSQL's <c>LISTEN/NOTIFY</c> alone: the default.</summary>
internal sealed class NotifySignalBus : SignalBus
{
    public override bool NotifiesInTransaction => true;

    public override string Carrier => "notify";
}
