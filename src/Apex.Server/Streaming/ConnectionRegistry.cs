using System.Collections.Concurrent;
using Apex.Server.Execution;
using Microsoft.Extensions.Options;

namespace Apex.Server.Streaming;

/// <summary>The open sockets of this node, per user, within the per-user connection limit.</summary>
internal sealed class ConnectionRegistry(IOptions<LimitsOptions> limits)
{
    private readonly ConcurrentDictionary<string, int> _perUser = new();

    public bool TryRegister(string userId)
    {
        var max = limits.Value.MaxConnectionsPerUser;
        while (true)
        {
            var current = _perUser.GetOrAdd(userId, 0);
            if (current >= max) return false;
            if (_perUser.TryUpdate(userId, current + 1, current)) return true;
        }
    }

    public void Unregister(string userId)
    {
        while (_perUser.TryGetValue(userId, out var current))
        {
            var removed = current <= 1
                ? _perUser.TryRemove(new KeyValuePair<string, int>(userId, current))
                : _perUser.TryUpdate(userId, current - 1, current);
            if (removed) return;
        }
    }
}
