using Apex.Server.Storage;

namespace Apex.Server.Auth;

/// <summary>
/// Ends open streams (sockets, SSE) when their credential ends: at once when their session is revoked on any node (logout,
/// refresh-token reuse, a deleted API key), and at the credential's expiry unless the stream re-authenticates first.
/// Revocations arrive through <see cref="StoreSignals.SessionRevoked"/>; after a gap in notifications every watched
/// session is looked up again, so a revocation missed while the listener reconnected still ends its streams.
/// </summary>
internal sealed partial class SessionWatch
{
    public const string RevokedReason = "session revoked";
    public const string ExpiredReason = "token expired: reconnect, or send reauth with a fresh token before expiry";

    private readonly Dictionary<string, List<Watcher>> _bySession = [];
    private readonly Lock _gate = new();
    private readonly IAccountStore _store;
    private readonly TimeProvider _time;
    private readonly ILogger<SessionWatch> _logger;

    public SessionWatch(StoreSignals signals, IAccountStore store, TimeProvider time, ILogger<SessionWatch> logger)
    {
        _store = store;
        _time = time;
        _logger = logger;
        signals.SessionRevoked += sessionId => End(sessionId, RevokedReason);
        signals.Resync += () => _ = RecheckAsync();
    }

    /// <summary>
    /// Calls <paramref name="onEnded"/> (once, with the reason) when the user's credential is revoked or expires.
    /// Dispose to stop watching (the stream ended, or re-authenticated and watches its new credential).
    /// </summary>
    public IDisposable Watch(CurrentUser user, Action<string> onEnded)
    {
        var watcher = new Watcher(this, user, onEnded);
        lock (_gate)
        {
            if (!_bySession.TryGetValue(user.SessionId, out var list)) _bySession[user.SessionId] = list = [];
            list.Add(watcher);
        }
        if (user.ExpiresAt is { } expires)
        {
            var due = expires - _time.GetUtcNow();
            watcher.Timer = _time.CreateTimer(static state => ((Watcher)state!).Fire(ExpiredReason), watcher, due > TimeSpan.Zero ? due : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
        }
        return watcher;
    }

    private void End(string sessionId, string reason)
    {
        List<Watcher>? ended;
        lock (_gate) ended = _bySession.TryGetValue(sessionId, out var list) ? [.. list] : null;
        foreach (var watcher in ended ?? []) watcher.Fire(reason);
    }

    private async Task RecheckAsync()
    {
        List<CurrentUser> users;
        lock (_gate) users = [.. _bySession.Values.Where(l => l.Count > 0).Select(l => l[0].User)];
        foreach (var user in users)
        {
            try
            {
                if (await _store.GetSessionAsync(user.Id, user.SessionId, CancellationToken.None) is not { RevokedAt: null }) End(user.SessionId, RevokedReason);
            }
            catch (Exception ex)
            {
                LogRecheckFailed(_logger, ex);
                return;
            }
        }
    }

    private void Remove(Watcher watcher)
    {
        lock (_gate)
        {
            if (!_bySession.TryGetValue(watcher.User.SessionId, out var list)) return;
            list.Remove(watcher);
            if (list.Count == 0) _bySession.Remove(watcher.User.SessionId);
        }
    }

    private sealed class Watcher(SessionWatch owner, CurrentUser user, Action<string> onEnded) : IDisposable
    {
        private int _done;

        public CurrentUser User => user;

        public ITimer? Timer { get; set; }

        public void Fire(string reason)
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            Release();
            onEnded(reason);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) Release();
        }

        private void Release()
        {
            Timer?.Dispose();
            owner.Remove(this);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Re-checking the sessions of open streams failed; they are checked again at the next resync")]
    private static partial void LogRecheckFailed(ILogger logger, Exception exception);
}
