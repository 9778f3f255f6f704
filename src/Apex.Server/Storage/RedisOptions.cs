namespace Apex.Server.Storage;

/// <summary>
/// Redis, optional (section <c>Apex:Redis</c>): when <see cref="Configuration"/> is set it carries what must be fast and
/// cluster-wide but not durable (the per-user stream caps, the message and sign-in rate limits, <c>/ws</c> tickets, and the
/// wake-ups that otherwise travel as <c>NOTIFY</c>). PostgreSQL stays the only store of record.
/// </summary>
internal sealed class RedisOptions
{
    public const string Section = "Apex:Redis";

    /// <summary>A StackExchange.Redis configuration string (<c>host:port,password=…</c>); unset, Redis is not used at all.</summary>
    public string? Configuration { get; set; }

    /// <summary>Prefix of every key and of the pub/sub channel, so that two clusters can share one Redis.</summary>
    public string Prefix { get; set; } = "apex";

    /// <summary>
    /// How often a node that cannot reach Redis says so over <c>NOTIFY</c>; the other nodes send their wake-ups as <c>NOTIFY</c>
    /// until three intervals pass without hearing it, so a node cut off from Redis alone still hears every wake-up.
    /// </summary>
    public TimeSpan FallbackInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// How long a stream's place in the per-user cap lasts in Redis unless its node renews it (every third of this): the places of
    /// a node that died free themselves within it.
    /// </summary>
    public TimeSpan StreamLease { get; set; } = TimeSpan.FromSeconds(30);

    public bool IsConfigured => !string.IsNullOrWhiteSpace(Configuration);
}
