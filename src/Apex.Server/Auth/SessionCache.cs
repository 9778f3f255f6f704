using System.Collections.Concurrent;
using Apex.Server.Storage;

namespace Apex.Server.Auth;

/// <summary>
/// The live sessions this node checked a moment ago, so a client's requests in quick succession (create a thread, send a
/// message, open its stream) cost one session read, not three. A revocation anywhere removes its entry at once (the same
/// signal that closes open streams), a gap in notifications clears everything, and an entry lives at most
/// <see cref="Lifetime"/>: a tier or role an admin changed on another node applies here within that.
/// </summary>
internal sealed class SessionCache
{
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(5);
    private const int MaxEntries = 100_000;
    private readonly ConcurrentDictionary<string, (SessionOwner Owner, long At)> _live = new(StringComparer.Ordinal);
    private readonly IAccountStore _store;
    private readonly TimeProvider _time;

    public SessionCache(IAccountStore store, StoreSignals signals, TimeProvider time)
    {
        _store = store;
        _time = time;
        signals.SessionRevoked += sessionId => _live.TryRemove(sessionId, out _);
        signals.Resync += _live.Clear;
    }

    public async Task<SessionOwner?> GetAsync(string userId, string sessionId, CancellationToken cancellationToken)
    {
        var now = _time.GetTimestamp();
        if (_live.TryGetValue(sessionId, out var hit) && hit.Owner.Session.UserId == userId && _time.GetElapsedTime(hit.At, now) < Lifetime) return hit.Owner;
        var owner = await _store.GetSessionOwnerAsync(userId, sessionId, cancellationToken);
        if (owner is { Session.RevokedAt: null })
        {
            // A flood of distinct sessions must not grow the cache without bound: past the cap it starts over.
            if (_live.Count >= MaxEntries) _live.Clear();
            _live[sessionId] = (owner, now);
        }
        else
        {
            _live.TryRemove(sessionId, out _);
        }
        return owner;
    }

    /// <summary>An account changed on this node (tier, role, lock): its next request reads it again.</summary>
    public void Forget(string userId)
    {
        foreach (var (sessionId, entry) in _live)
            if (entry.Owner.Session.UserId == userId) _live.TryRemove(sessionId, out _);
    }
}
