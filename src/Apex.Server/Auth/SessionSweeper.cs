using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Auth;

/// <summary>
/// Deletes sessions (and their API keys) a day after they expired or were revoked, expired socket tickets, and audit
/// entries past their retention, once an hour: without it every sign-in leaves a row for ever. The day's grace keeps a revoked session recognisable for a while.
/// </summary>
internal sealed partial class SessionSweeper(IAccountStore store, TimeProvider time, IOptions<AuthOptions> options, ILogger<SessionSweeper> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromHours(1);
    public static readonly TimeSpan Grace = TimeSpan.FromDays(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                var purged = await store.PurgeSessionsAsync(time.GetUtcNow() - Grace, stoppingToken);
                if (purged > 0) LogPurged(logger, purged);
                // The audit trail has its own retention (Apex:Auth:AuditRetention), apart from the events'.
                await store.PurgeSecurityEventsAsync(time.GetUtcNow() - options.Value.AuditRetention, stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPurgeFailed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).AsTask().ContinueWith(t => t.IsCompletedSuccessfully && t.Result, TaskScheduler.Default));
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Deleted {Count} expired or revoked sessions")]
    private static partial void LogPurged(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Deleting expired sessions failed; trying again in an hour")]
    private static partial void LogPurgeFailed(ILogger logger, Exception exception);
}
