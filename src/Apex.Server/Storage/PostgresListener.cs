using Microsoft.Extensions.Options;
using Npgsql;

namespace Apex.Server.Storage;

/// <summary>
/// One <c>LISTEN</c> connection per node: new events wake this node's followers of the thread,
/// new or freed runs wake its worker, and cancellations reach the run wherever it executes.
/// PostgreSQL alone does what other servers add Redis for. With Redis configured the wake-ups travel over Redis
/// (<see cref="RedisSignalBus"/>), and this connection stays, idle: a node that cannot reach Redis sends
/// <c>NOTIFY</c>, and says so here every <see cref="RedisOptions.FallbackInterval"/>, so every node hears it either way.
/// </summary>
internal sealed partial class PostgresListener(Database database, StoreSignals signals, SignalBus bus, NodeIdentity node, TimeProvider time,
    IOptions<RedisOptions> redisOptions, ILogger<PostgresListener> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (database is not PostgresDatabase postgres) return;
        var announcing = bus is NotifySignalBus ? Task.CompletedTask : AnnounceFallbackAsync(postgres, stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = postgres.CreateListenerConnection();
                await connection.OpenAsync(stoppingToken);
                connection.Notification += (_, e) => Handle(e.Channel, e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {StoreSignals.EventsChannel}; LISTEN {StoreSignals.RunsChannel}; LISTEN {StoreSignals.CancelChannel}; LISTEN {StoreSignals.SessionsChannel}; LISTEN {StoreSignals.RedisFallbackChannel};", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                // Whatever happened while not listening is in the store: look once.
                signals.OnResync();
                while (true) await connection.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                LogListenFailed(logger, ex);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken);
            }
        }
        await announcing;
    }

    private void Handle(string channel, string payload)
    {
        if (channel == StoreSignals.RedisFallbackChannel) bus.PeerFallingBack(payload);
        else signals.Receive(channel, payload, node.Id);
    }

    /// <summary>
    /// While this node cannot reach Redis: tells the others every interval, so that they send <c>NOTIFY</c> too. One interval after
    /// the first announcement every follower is woken once more: a wake-up another node published over Redis before it heard this
    /// node is read from the store then.
    /// </summary>
    private async Task AnnounceFallbackAsync(PostgresDatabase postgres, CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(redisOptions.Value.FallbackInterval, time);
        var announced = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                if (!bus.FallingBack)
                {
                    announced = 0;
                    continue;
                }
                await postgres.NotifyNowAsync([new Notice(StoreSignals.RedisFallbackChannel, node.Id)], stoppingToken);
                if (++announced == 2) signals.OnResync();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Listening for PostgreSQL notifications failed; retrying")]
    private static partial void LogListenFailed(ILogger logger, Exception exception);
}
