using System.Text;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Apex.Server.Storage;

/// <summary>
/// Wake-ups over Redis pub/sub: a write's notices are published after its commit, in one message on one channel, instead of
/// <c>NOTIFY</c> inside the transaction (whose delivery serializes every committing writer on one global lock). Whenever Redis
/// cannot carry them, <c>NOTIFY</c> does: a notice that fails to publish is sent as <c>NOTIFY</c> at once; a node that loses
/// Redis sends <c>NOTIFY</c> and says so every <see cref="RedisOptions.FallbackInterval"/> (see <see cref="PostgresListener"/>),
/// and while any node says so, every node sends <c>NOTIFY</c>. Each switch wakes every follower once: they re-read from their
/// seq, so whatever was missed during the switch is read from the database, and nothing is read twice.
/// </summary>
internal sealed partial class RedisSignalBus(RedisConnection redis, StoreSignals signals, NodeIdentity node, TimeProvider time, IOptions<RedisOptions> options,
    ILogger<RedisSignalBus> logger) : SignalBus, IHostedService
{
    private const string SignalsChannel = "signals";
    private long _peersFallingBackUntil;
    private volatile bool _subscribed;

    public override bool NotifiesInTransaction => FallingBack || time.GetUtcNow().UtcTicks < Interlocked.Read(ref _peersFallingBackUntil);

    public override bool FallingBack => !_subscribed || !redis.IsAvailable;

    public override string Carrier => NotifiesInTransaction ? "notify" : "redis";

    public override async Task<bool> PublishAsync(IReadOnlyList<Notice> notices, CancellationToken cancellationToken)
    {
        if (notices.Count == 0) return true;
        if (!redis.IsAvailable) return false;
        var message = new StringBuilder();
        foreach (var notice in notices.Distinct())
        {
            if (message.Length > 0) message.Append('\n');
            message.Append(notice.Channel).Append('\t').Append(notice.Payload);
        }
        try
        {
            await redis.Subscriber.PublishAsync(redis.Channel(SignalsChannel), message.ToString());
            return true;
        }
        catch (Exception ex) when (RedisConnection.IsFailure(ex))
        {
            redis.ReportFailure(ex);
            return false;
        }
    }

    public override void PeerFallingBack(string nodeId)
    {
        if (nodeId == node.Id) return;
        var until = (time.GetUtcNow() + options.Value.FallbackInterval * 3).UtcTicks;
        var before = Interlocked.Exchange(ref _peersFallingBackUntil, until);
        if (before < time.GetUtcNow().UtcTicks) LogPeerFallingBack(logger, nodeId);
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!redis.IsConfigured) return;
        redis.Lost += () => signals.OnResync();
        redis.Restored += () => _ = RestoredAsync();
        await SubscribeAsync();
    }

    private async Task RestoredAsync()
    {
        await SubscribeAsync();
        signals.OnResync();
    }

    /// <summary>Once: the multiplexer subscribes again by itself after every reconnect.</summary>
    private async Task SubscribeAsync()
    {
        if (_subscribed || !redis.IsAvailable) return;
        try
        {
            await redis.Subscriber.SubscribeAsync(redis.Channel(SignalsChannel), (_, message) => Receive(message));
            _subscribed = true;
        }
        catch (Exception ex) when (RedisConnection.IsFailure(ex))
        {
            redis.ReportFailure(ex);
        }
    }

    private void Receive(RedisValue message)
    {
        foreach (var line in ((string?)message ?? "").Split('\n'))
        {
            var tab = line.IndexOf('\t', StringComparison.Ordinal);
            if (tab > 0) signals.Receive(line[..tab], line[(tab + 1)..], node.Id);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {NodeId} cannot reach Redis: this node sends its wake-ups as NOTIFY too until it can")]
    private static partial void LogPeerFallingBack(ILogger logger, string nodeId);
}
