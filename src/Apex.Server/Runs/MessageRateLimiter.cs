using System.Threading.RateLimiting;
using Apex.Server.Execution;
using Microsoft.Extensions.Options;

namespace Apex.Server.Runs;

/// <summary>Messages per user per minute, shared by every door (REST, <c>/ws</c>), so none is a way around another.</summary>
internal sealed class MessageRateLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string> _messages;

    public MessageRateLimiter(IOptions<LimitsOptions> limits)
    {
        var perMinute = limits.Value.MessagesPerMinutePerUser;
        _messages = PartitionedRateLimiter.Create<string, string>(userId => RateLimitPartition.GetTokenBucketLimiter(userId, _ => new TokenBucketRateLimiterOptions
        {
            TokenLimit = perMinute,
            TokensPerPeriod = perMinute,
            ReplenishmentPeriod = TimeSpan.FromMinutes(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        }));
    }

    /// <summary>Takes one message permit for the user; false when the user is over the limit.</summary>
    public bool TryAcquire(string userId)
    {
        using var lease = _messages.AttemptAcquire(userId);
        return lease.IsAcquired;
    }

    public void Dispose() => _messages.Dispose();
}
