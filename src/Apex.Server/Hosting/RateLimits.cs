using System.Threading.RateLimiting;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Microsoft.Extensions.Options;

namespace Apex.Server.Hosting;

/// <summary>
/// Rate limits: sign-in endpoints per client address (against password guessing), and messages
/// per user (shared by REST and <c>/ws</c>, so neither is a way around the other).
/// </summary>
internal sealed class RateLimits : IDisposable
{
    public const string Auth = "auth";

    private readonly PartitionedRateLimiter<string> _messages;

    public RateLimits(IOptions<LimitsOptions> limits)
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
    public bool TryAcquireMessage(CurrentUser user)
    {
        using var lease = _messages.AttemptAcquire(user.Id);
        return lease.IsAcquired;
    }

    public void Dispose() => _messages.Dispose();
}
