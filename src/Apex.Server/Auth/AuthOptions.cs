using System.ComponentModel.DataAnnotations;

namespace Apex.Server.Auth;

internal sealed class AuthOptions
{
    public const string Section = "Apex:Auth";

    public TimeSpan AccessTokenLifetime { get; set; } = TimeSpan.FromMinutes(15);
    public TimeSpan RefreshTokenLifetime { get; set; } = TimeSpan.FromDays(30);
    public TimeSpan WsTicketLifetime { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Failed logins in a row before the account is locked for <see cref="LockoutDuration"/>.</summary>
    [Range(1, 100)] public int MaxFailedLogins { get; set; } = 5;
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// The HMAC key that signs access tokens, base64 (at least 32 bytes), or a file holding it (<see cref="SigningKeyFile"/>).
    /// Neither set: a key generated once and kept in the database (the embedded default).
    /// </summary>
    public string? SigningKey { get; set; }
    public string? SigningKeyFile { get; set; }
    /// <summary>Keys that signed tokens still in circulation: accepted, never used to sign (rotation).</summary>
    public string[] PreviousSigningKeys { get; set; } = [];

    /// <summary>Emails of accounts that get the admin role (at start-up, and when they register).</summary>
    public string[] Admins { get; set; } = [];

    /// <summary>How long the audit trail (security events) is kept; separate from the events' retention.</summary>
    public TimeSpan AuditRetention { get; set; } = TimeSpan.FromDays(365);

    /// <summary>API keys a user may hold at once.</summary>
    [Range(1, 1000)] public int MaxApiKeysPerUser { get; set; } = 20;

    [Range(8, 128)] public int MinPasswordLength { get; set; } = 8;

    /// <summary>The plan tier of new accounts: free, pro or enterprise.</summary>
    [Required, RegularExpression("^(free|pro|enterprise)$")]
    public string DefaultTier { get; set; } = "free";
}
