using System.Threading.RateLimiting;
using Apex.Server.Storage;

namespace Apex.Server.Auth;

/// <summary>
/// The sign-in rate limit of one client address (a partition of <see cref="AuthEndpoints.RateLimitPolicy"/>): a fixed window
/// counted in Redis while Redis is in use, so that it holds across the cluster, else this node's own fixed window. Acquiring
/// asks Redis, so the synchronous attempt only answers when Redis is not in use; the rate limiting middleware then awaits
/// <see cref="AcquireAsyncCore"/>.
/// </summary>
internal sealed class ClusterWindowLimiter(RedisConnection redis, string partition, int permitLimit, TimeSpan window) : RateLimiter
{
    private readonly FixedWindowRateLimiter _local = new(new FixedWindowRateLimiterOptions { PermitLimit = permitLimit, Window = window, QueueLimit = 0 });

    public override TimeSpan? IdleDuration => _local.IdleDuration;

    public override RateLimiterStatistics? GetStatistics() => _local.GetStatistics();

    protected override RateLimitLease AttemptAcquireCore(int permitCount) =>
        redis.IsAvailable ? Lease.Refused : _local.AttemptAcquire(permitCount);

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        if (await redis.CountInWindowAsync(window, cancellationToken, "rate", "auth", partition) is { } count) return count <= permitLimit ? Lease.Acquired : Lease.Refused;
        return _local.AttemptAcquire(permitCount);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _local.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>A lease of the cluster's count: acquired or not, nothing to release (the window's counter expires by itself).</summary>
    private sealed class Lease(bool acquired) : RateLimitLease
    {
        public static readonly Lease Acquired = new(true);
        public static readonly Lease Refused = new(false);

        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }
}
