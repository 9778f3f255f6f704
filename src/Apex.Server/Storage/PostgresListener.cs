using Npgsql;

namespace Apex.Server.Storage;

/// <summary>
/// One <c>LISTEN</c> connection per node: new events wake this node's followers of the thread,
/// new or freed runs wake its worker, and cancellations reach the run wherever it executes.
/// PostgreSQL alone does what other servers add Redis for.
/// </summary>
internal sealed partial class PostgresListener(Database database, StoreSignals signals, NodeIdentity node, TimeProvider time,
    ILogger<PostgresListener> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (database is not PostgresDatabase postgres) return;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = postgres.CreateListenerConnection();
                await connection.OpenAsync(stoppingToken);
                connection.Notification += (_, e) => Handle(e.Channel, e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {StoreSignals.EventsChannel}; LISTEN {StoreSignals.RunsChannel}; LISTEN {StoreSignals.CancelChannel}; LISTEN {StoreSignals.SessionsChannel};", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                // Whatever happened while not listening is in the store: look once.
                signals.OnResync();
                while (true) await connection.WaitAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogListenFailed(logger, ex);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken);
            }
        }
    }

    private void Handle(string channel, string payload)
    {
        switch (channel)
        {
            case StoreSignals.EventsChannel:
                var parts = payload.Split('|');
                // This node's own appends were already published in-process.
                if (parts.Length == 3 && parts[0] != node.Id) signals.OnEventsStored(parts[1]);
                break;
            case StoreSignals.RunsChannel:
                // This node woke its own worker when it queued or ended the run; only other nodes' changes need a claim.
                if (payload != node.Id) signals.OnRunsChanged();
                break;
            case StoreSignals.CancelChannel:
                var cancel = payload.Split('|', 2);
                if (cancel.Length == 2) signals.OnCancelRequested(cancel[0], cancel[1]);
                break;
            case StoreSignals.SessionsChannel:
                // This node's own revocations were already raised in-process by the store.
                var revoked = payload.Split('|', 2);
                if (revoked.Length == 2 && revoked[0] != node.Id) signals.OnSessionRevoked(revoked[1]);
                break;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Listening for PostgreSQL notifications failed; retrying")]
    private static partial void LogListenFailed(ILogger logger, Exception exception);
}
