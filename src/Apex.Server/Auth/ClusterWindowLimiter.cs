using System.Globalization;
using System.Threading.RateLimiting;
using Apex.Server.Storage;

namespace Apex.Server.Auth;

/// <summary>
/// The sign-in rate limit of one client address (a partition of <see cref="AuthEndpoints.RateLimitPolicy"/>): a fixed window
/// counted in Redis while Redis is in use, so that it holds across the cluster, else this node's own fixed window. Acquiring
/// asks Redis, so the synchronous attempt only answers when Redis is not in use; the rate limiting middleware then awaits
/// <see cref="AcquireAsyncCore"/>.
/// </summary>
internal sealed class ClusterWindowLimiter(RedisConnection redis, TimeProvider time, string partition, int permitLimit, TimeSpan window) : RateLimiter
{
    private readonly FixedWindowRateLimiter _local = new(new FixedWindowRateLimiterOptions { PermitLimit = permitLimit, Window = window, QueueLimit = 0 });

    public override TimeSpan? IdleDuration => _local.IdleDuration;

    public override RateLimiterStatistics? GetStatistics() => _local.GetStatistics();

    protected override RateLimitLease AttemptAcquireCore(int permitCount) =>
        redis.IsAvailable ? Refused.Instance : _local.AttemptAcquire(permitCount);

    protected override async ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken)
    {
        if (redis.IsAvailable)
        {
            try
            {
                var start = (time.GetUtcNow().ToUnixTimeMilliseconds() / (long)window.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
                var count = await redis.CountAsync(redis.Key("rate", "auth", partition, start), window).WaitAsync(cancellationToken);
                return count <= permitLimit ? Acquired.Instance : Refused.Instance;
            }
            catch (Exception ex) when (RedisConnection.IsFailure(ex))
            {
                redis.ReportFailure(ex);
            }
        }
        return _local.AttemptAcquire(permitCount);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _local.Dispose();
        base.Dispose(disposing);
    }

    private sealed class Acquired : RateLimitLease
    {
        public static readonly Acquired Instance = new();

        public override bool IsAcquired => true;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }

    private sealed class Refused : RateLimitLease
    {
        public static readonly Refused Instance = new();

        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }
}
