using Microsoft.AspNetCore.Identity;
using Apex.Server.Storage;

namespace Apex.Server.Auth;

/// <summary>Writes the account's security events (sign-ins, failures, lockouts, logouts, token reuse, API keys).</summary>
internal sealed partial class SecurityLog(IAccountStore store, IdGenerator ids, TimeProvider time, ILogger<SecurityLog> logger)
{
    public Task RecordAsync(string userId, string kind, string? address, string? detail, CancellationToken cancellationToken) =>
        RecordByAsync(null, userId, kind, address, detail, cancellationToken);

    /// <summary>An entry on <paramref name="userId"/>'s trail of something <paramref name="actorId"/> (an admin) did to the account.</summary>
    public async Task RecordByAsync(string? actorId, string userId, string kind, string? address, string? detail, CancellationToken cancellationToken)
    {
        try
        {
            await store.AddSecurityEventAsync(new SecurityEventRecord(ids.NewId(), userId, kind, time.GetUtcNow(), address, detail, actorId), CancellationToken.None);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // The event is a record of what happened, not a gate: the sign-in it describes already succeeded or failed.
            LogRecordFailed(logger, ex, kind, userId);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Recording security event {Kind} for user {UserId} failed")]
    private static partial void LogRecordFailed(ILogger logger, Exception exception, string kind, string userId);
}

/// <summary>
/// A password hash of no account, checked when the email is unknown so that a sign-in costs the same hashing work whether
/// or not the account exists.
/// </summary>
internal sealed class DecoyPassword(IPasswordHasher<UserRecord> hasher)
{
    private static readonly UserRecord Nobody = new("decoy", "", "", "", "", "free", DateTimeOffset.UnixEpoch, 0, null);
    private readonly Lazy<string> _hash = new(() => hasher.HashPassword(Nobody, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24))));

    public void Verify(string password) => hasher.VerifyHashedPassword(Nobody, _hash.Value, password);
}
