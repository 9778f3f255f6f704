using System.Globalization;
using System.Net;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Apex.Server.Storage;

/// <summary>
/// The node's one Redis connection (when <see cref="RedisOptions.Configuration"/> is set) and whether it is usable now. A lost
/// connection is logged once and reported through <see cref="Lost"/>; every user of Redis then falls back (to <c>NOTIFY</c>, to
/// per-node limits, to the database's tickets) until <see cref="Restored"/>. The multiplexer keeps reconnecting by itself.
/// </summary>
internal sealed partial class RedisConnection(IOptions<RedisOptions> options, TimeProvider time, ILogger<RedisConnection> logger) : IHostedService, IAsyncDisposable
{
    private readonly HashSet<(string EndPoint, ConnectionType Type)> _failed = [];
    private readonly Lock _gate = new();
    private ConnectionMultiplexer? _multiplexer;
    private volatile bool _available;

    public bool IsConfigured => options.Value.IsConfigured;

    /// <summary>Connected, both for commands and for pub/sub: Redis is in use.</summary>
    public bool IsAvailable => _available;

    /// <summary>The connection was lost (raised once per loss).</summary>
    public event Action? Lost;

    /// <summary>The connection is back after a loss (raised once per return).</summary>
    public event Action? Restored;

    /// <summary>The database to send commands to; only while <see cref="IsAvailable"/>.</summary>
    public IDatabase Database => _multiplexer?.GetDatabase() ?? throw new InvalidOperationException("Redis is not configured.");

    public ISubscriber Subscriber => _multiplexer?.GetSubscriber() ?? throw new InvalidOperationException("Redis is not configured.");

    /// <summary>A key under the configured prefix: <c>apex:part:part</c>.</summary>
    public RedisKey Key(params string[] parts) => $"{options.Value.Prefix}:{string.Join(':', parts)}";

    public RedisChannel Channel(string name) => RedisChannel.Literal($"{options.Value.Prefix}:{name}");

    /// <summary>
    /// One more in the current fixed window of the counter that <paramref name="parts"/> name (a key per window, expiring with it):
    /// the cluster's count so far, this one included; null when Redis is not in use or did not answer (the caller counts on this
    /// node instead). The counters of the cluster-wide rate limits.
    /// </summary>
    public async Task<long?> CountInWindowAsync(TimeSpan window, CancellationToken cancellationToken, params string[] parts)
    {
        if (!IsAvailable) return null;
        try
        {
            var start = (time.GetUtcNow().ToUnixTimeMilliseconds() / (long)window.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
            return (long)await Database.ScriptEvaluateAsync(CountScript, [Key([.. parts, start])], [(long)window.TotalMilliseconds + 1000]).WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (IsFailure(ex))
        {
            ReportFailure(ex);
            return null;
        }
    }

    private const string CountScript = """
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
        return n
        """;

    /// <summary>What a call to Redis throws when Redis cannot answer: the caller falls back.</summary>
    public static bool IsFailure(Exception exception) => exception is RedisException or TimeoutException or ObjectDisposedException;

    /// <summary>A call failed: the caller fell back for it. Logged at Debug only, the loss itself is logged once when the multiplexer reports it.</summary>
    public void ReportFailure(Exception exception) => LogCallFailed(logger, exception);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!IsConfigured) return;
        var configuration = ConfigurationOptions.Parse(options.Value.Configuration!);
        // Redis is optional at every moment, start-up included: keep trying in the background instead of failing the start,
        // and fail a command at once while disconnected (the caller falls back) instead of queueing it for later.
        configuration.AbortOnConnectFail = false;
        configuration.BacklogPolicy = BacklogPolicy.FailFast;
        configuration.ClientName ??= "apex";
        // Back within a second of Redis being back, however long it was away (the default backs off exponentially).
        configuration.ReconnectRetryPolicy ??= new LinearRetry(1000);
        var multiplexer = await ConnectionMultiplexer.ConnectAsync(configuration);
        multiplexer.ConnectionFailed += (_, e) => OnFailed(e.EndPoint, e.ConnectionType, e.FailureType);
        multiplexer.ConnectionRestored += (_, e) => OnRestored(e.EndPoint, e.ConnectionType);
        _multiplexer = multiplexer;
        lock (_gate)
        {
            _available = multiplexer.IsConnected;
            // Not connected yet: available once both of its connections (commands, pub/sub) report they are up.
            if (!_available)
                foreach (var endPoint in configuration.EndPoints)
                    _failed.UnionWith([(Describe(endPoint), ConnectionType.Interactive), (Describe(endPoint), ConnectionType.Subscription)]);
        }
        if (_available) LogConnected(logger, configuration.EndPoints.Count > 0 ? Describe(configuration.EndPoints[0]) : "?");
        else LogUnavailableAtStart(logger);
    }

    private void OnFailed(EndPoint? endPoint, ConnectionType type, ConnectionFailureType failure)
    {
        bool lost;
        lock (_gate)
        {
            _failed.Add((Describe(endPoint), type));
            lost = _available;
            _available = false;
        }
        if (!lost) return;
        LogLost(logger, failure.ToString(), $"{Describe(endPoint)} ({type})");
        Lost?.Invoke();
    }

    private void OnRestored(EndPoint? endPoint, ConnectionType type)
    {
        bool restored;
        lock (_gate)
        {
            _failed.Remove((Describe(endPoint), type));
            restored = !_available && _failed.Count == 0 && _multiplexer?.IsConnected == true;
            if (restored) _available = true;
        }
        if (!restored) return;
        LogRestored(logger);
        Restored?.Invoke();
    }

    private static string Describe(EndPoint? endPoint) => endPoint switch
    {
        null => "",
        DnsEndPoint dns => $"{dns.Host}:{dns.Port}",
        _ => endPoint.ToString() ?? "",
    };

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        if (_multiplexer is { } multiplexer) await multiplexer.DisposeAsync();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis connected at {EndPoint}: stream caps, rate limits and tickets hold across the cluster, wake-ups travel over Redis")]
    private static partial void LogConnected(ILogger logger, string endPoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis is unreachable at start-up: wake-ups use NOTIFY and limits hold per node until it connects")]
    private static partial void LogUnavailableAtStart(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Redis connection lost ({Failure} on {Connection}): wake-ups fall back to NOTIFY and limits to per node until it is back")]
    private static partial void LogLost(ILogger logger, string failure, string connection);

    [LoggerMessage(Level = LogLevel.Information, Message = "Redis connection restored: back to cluster-wide limits and Redis wake-ups")]
    private static partial void LogRestored(ILogger logger);

    [LoggerMessage(Level = LogLevel.Debug, Message = "A Redis call failed; falling back for it")]
    private static partial void LogCallFailed(ILogger logger, Exception exception);
}
