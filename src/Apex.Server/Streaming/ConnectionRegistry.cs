using System.Collections.Concurrent;
using Apex.Server.Execution;
using Microsoft.Extensions.Options;

namespace Apex.Server.Streaming;

/// <summary>What a user holds open on this node: sockets and SSE streams, each within its own per-user limit.</summary>
internal enum StreamKind
{
    Socket,
    Sse,
}

/// <summary>The open sockets and SSE streams of this node, per user, within the per-user limits.</summary>
internal sealed class ConnectionRegistry(IOptions<LimitsOptions> limits)
{
    private readonly ConcurrentDictionary<(StreamKind, string), int> _perUser = new();

    public int Limit(StreamKind kind) => kind == StreamKind.Socket ? limits.Value.MaxConnectionsPerUser : limits.Value.MaxSseStreamsPerUser;

    public bool TryRegister(StreamKind kind, string userId)
    {
        var max = Limit(kind);
        var key = (kind, userId);
        while (true)
        {
            var current = _perUser.GetOrAdd(key, 0);
            if (current >= max) return false;
            if (_perUser.TryUpdate(key, current + 1, current)) return true;
        }
    }

    public void Unregister(StreamKind kind, string userId)
    {
        var key = (kind, userId);
        while (_perUser.TryGetValue(key, out var current))
        {
            var removed = current <= 1
                ? _perUser.TryRemove(new KeyValuePair<(StreamKind, string), int>(key, current))
                : _perUser.TryUpdate(key, current - 1, current);
            if (removed) return;
        }
    }
}
