using System.Threading.RateLimiting;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Runs;

/// <summary>
/// Messages per user per minute, shared by every door (REST, <c>/ws</c>), so none is a way around another. While Redis is in use
/// the count is the cluster's (one counter per user and minute); without it (not configured, or unreachable) it is this node's.
/// </summary>
internal sealed class MessageRateLimiter : IDisposable
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);
    private readonly PartitionedRateLimiter<string> _messages;
    private readonly RedisConnection _redis;
    private readonly int _perMinute;

    public MessageRateLimiter(IOptions<LimitsOptions> limits, RedisConnection redis)
    {
        _redis = redis;
        var perMinute = _perMinute = limits.Value.MessagesPerMinutePerUser;
        _messages = PartitionedRateLimiter.Create<string, string>(userId => RateLimitPartition.GetTokenBucketLimiter(userId, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = perMinute,
            TokensPerPeriod = perMinute,
            ReplenishmentPeriod = Window,
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>Takes one message permit for the user; false when the user is over the limit.</summary>
    public async ValueTask<bool> TryAcquireAsync(string userId, CancellationToken cancellationToken)
    {
        if (await _redis.CountInWindowAsync(Window, cancellationToken, "rate", "messages", userId) is { } count) return count <= _perMinute;
        using var lease = _messages.AttemptAcquire(userId);
        return lease.IsAcquired;
    }

    public void Dispose() => _messages.Dispose();
}
