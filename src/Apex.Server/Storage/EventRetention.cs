using Microsoft.Extensions.Options;

namespace Apex.Server.Storage;

/// <summary>
/// Deletes stored events older than <see cref="StorageOptions.EventRetention"/>, when one is set
/// (by default events are kept for ever and every thread can be resumed from seq 0).
/// </summary>
internal sealed partial class EventRetention(IEventStore store, TimeProvider time, IOptions<StorageOptions> options, ILogger<EventRetention> logger) : BackgroundService
{
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        if (options.Value.EventRetention is not { } retention) return 0;
        var deleted = await store.DeleteEventsOlderThanAsync(time.GetUtcNow() - retention, cancellationToken);
        if (deleted > 0) LogSwept(logger, deleted, retention);
        return deleted;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.EventRetention is null) return;
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(10), time);
        do
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogSweepFailed(logger, ex);
            }
        } while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted {Count} events older than {Retention}")]
    private static partial void LogSwept(ILogger logger, int count, TimeSpan retention);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sweeping old events failed")]
    private static partial void LogSweepFailed(ILogger logger, Exception exception);
}
