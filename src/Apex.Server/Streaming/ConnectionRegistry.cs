using System.Collections.Concurrent;
using System.Globalization;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Apex.Server.Streaming;

/// <summary>What a user holds open on this node: sockets and SSE streams, each within its own per-user limit.</summary>
internal enum StreamKind
{
    Socket,
    Sse,
}

/// <summary>
/// The open sockets and SSE streams, per user, within the per-user limits: on this node always, and across the cluster while
/// Redis is in use. There each user's streams are a sorted set of places scored by their expiry: a node renews its places every
/// third of <see cref="RedisOptions.StreamLease"/>, so the places of a node that died expire by themselves, and a node re-adds its
/// live places after Redis was lost or flushed. Without Redis (not configured, or unreachable) the limit holds per node.
/// </summary>
internal sealed partial class ConnectionRegistry : IDisposable
{
    private const string RegisterScript = """
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
        if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
        redis.call('PEXPIRE', KEYS[1], ARGV[5])
        return 1
        """;

    private readonly ConcurrentDictionary<(StreamKind, string), int> _perUser = new();
    // This node's places in Redis (member -> its key), renewed by the timer.
    private readonly ConcurrentDictionary<string, RedisKey> _places = new();
    private readonly IOptions<LimitsOptions> _limits;
    private readonly RedisConnection _redis;
    private readonly NodeIdentity _node;
    private readonly TimeProvider _time;
    private readonly TimeSpan _lease;
    private readonly ILogger<ConnectionRegistry> _logger;
    private readonly ITimer? _renewal;

    public ConnectionRegistry(IOptions<LimitsOptions> limits, RedisConnection redis, NodeIdentity node, TimeProvider time, IOptions<RedisOptions> redisOptions,
        ILogger<ConnectionRegistry> logger)
    {
        _limits = limits;
        _redis = redis;
        _node = node;
        _time = time;
        _logger = logger;
        _lease = redisOptions.Value.StreamLease;
        if (redis.IsConfigured) _renewal = time.CreateTimer(_ => _ = RenewAsync(), null, _lease / 3, _lease / 3);
    }

    public int Limit(StreamKind kind) => kind == StreamKind.Socket ? _limits.Value.MaxConnectionsPerUser : _limits.Value.MaxSseStreamsPerUser;

    /// <summary>A place for one more stream of the user, or null when the user already holds the limit. Dispose it when the stream ends.</summary>
    public async ValueTask<IDisposable?> TryRegisterAsync(StreamKind kind, string userId, CancellationToken cancellationToken)
    {
        if (!TryRegisterHere(kind, userId)) return null;
        var place = new Place(this, kind, userId, _redis.IsConfigured ? _redis.Key("streams", kind == StreamKind.Socket ? "ws" : "sse", userId) : default,
            $"{_node.Id}:{Guid.CreateVersion7():N}");
        if (!_redis.IsConfigured) return place;
        if (_redis.IsAvailable)
        {
            try
            {
                var now = _time.GetUtcNow();
                var added = (long)await _redis.Database.ScriptEvaluateAsync(RegisterScript, [place.Key],
                    [now.ToUnixTimeMilliseconds(), Limit(kind), (now + _lease).ToUnixTimeMilliseconds(), place.Member, (long)_lease.TotalMilliseconds]);
                if (added == 0)
                {
                    UnregisterHere(kind, userId);
                    return null;
                }
            }
            catch (Exception ex) when (RedisConnection.IsFailure(ex))
            {
                // Redis cannot answer: the limit holds on this node alone, and the renewal adds the place once Redis is back.
                _redis.ReportFailure(ex);
            }
        }
        _places[place.Member] = place.Key;
        return place;
    }

    private bool TryRegisterHere(StreamKind kind, string userId)
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

    private void UnregisterHere(StreamKind kind, string userId)
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

    private void Release(Place place)
    {
        UnregisterHere(place.Kind, place.UserId);
        if (!_redis.IsConfigured || !_places.TryRemove(place.Member, out _) || !_redis.IsAvailable) return;
        try
        {
            _redis.Database.SortedSetRemove(place.Key, place.Member, CommandFlags.FireAndForget);
        }
        catch (Exception ex) when (RedisConnection.IsFailure(ex))
        {
            // The place expires with its lease.
            _redis.ReportFailure(ex);
        }
    }

    /// <summary>Renews this node's places (re-adding any that Redis lost), so that only a dead node's places expire.</summary>
    private async Task RenewAsync()
    {
        if (!_redis.IsAvailable || _places.IsEmpty) return;
        try
        {
            var expiry = (_time.GetUtcNow() + _lease).ToUnixTimeMilliseconds();
            var database = _redis.Database;
            var renewals = new List<Task>();
            var snapshot = _places.ToArray();
            foreach (var (member, key) in snapshot)
            {
                renewals.Add(database.SortedSetAddAsync(key, member, expiry));
                renewals.Add(database.KeyExpireAsync(key, _lease));
            }
            await Task.WhenAll(renewals);
            // A place released while its renewal was on the way would stay until its lease ends: take it out again.
            foreach (var (member, key) in snapshot.Where(p => !_places.ContainsKey(p.Key))) await database.SortedSetRemoveAsync(key, member);
        }
        catch (Exception ex) when (RedisConnection.IsFailure(ex))
        {
            _redis.ReportFailure(ex);
        }
        catch (Exception ex)
        {
            LogRenewalFailed(_logger, ex, _places.Count.ToString(CultureInfo.InvariantCulture));
        }
    }

    public void Dispose() => _renewal?.Dispose();

    private sealed class Place(ConnectionRegistry registry, StreamKind kind, string userId, RedisKey key, string member) : IDisposable
    {
        private int _released;

        public StreamKind Kind => kind;

        public string UserId => userId;

        public RedisKey Key => key;

        public string Member => member;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0) registry.Release(this);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Renewing {Count} stream places in Redis failed")]
    private static partial void LogRenewalFailed(ILogger logger, Exception exception, string count);
}
