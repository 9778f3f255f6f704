
namespace Apex.Server.Storage;

/// <summary>Accounts, sessions, the signing key and socket tickets.</summary>
internal sealed class SqlAccountStore(Database db) : SqlStore(db), IAccountStore
{

    public Task<bool> CreateUserAsync(UserRecord user, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) => await c.ExecuteAsync(
            $"INSERT INTO users ({UserColumns}) VALUES (@id, @e, @ne, @ph, @dn, @tier, @ca, 0, NULL) ON CONFLICT (normalized_email) DO NOTHING", t, cancellationToken,
            ("@id", user.Id), ("@e", user.Email), ("@ne", user.NormalizedEmail), ("@ph", user.PasswordHash), ("@dn", user.DisplayName),
            ("@tier", user.Tier), ("@ca", user.CreatedAt.ToUnixMs())) == 1, cancellationToken);

    public Task<UserRecord?> FindUserByEmailAsync(string normalizedEmail, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {UserColumns} FROM users WHERE normalized_email = @ne", ReadUser, cancellationToken, ("@ne", normalizedEmail));

    public Task<UserRecord?> GetUserAsync(string userId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {UserColumns} FROM users WHERE id = @id", ReadUser, cancellationToken, ("@id", userId));

    public Task RecordLoginFailureAsync(string userId, int maxFailures, DateTimeOffset lockoutUntil, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync("""
            UPDATE users SET
              lockout_until = CASE WHEN failed_logins + 1 >= @max THEN @until ELSE lockout_until END,
              failed_logins = CASE WHEN failed_logins + 1 >= @max THEN 0 ELSE failed_logins + 1 END
            WHERE id = @id
            """, t, cancellationToken, ("@id", userId), ("@max", maxFailures), ("@until", lockoutUntil.ToUnixMs())), cancellationToken);

    public Task ResetLoginFailuresAsync(string userId, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync("UPDATE users SET failed_logins = 0, lockout_until = NULL WHERE id = @id AND (failed_logins <> 0 OR lockout_until IS NOT NULL)",
            t, cancellationToken, ("@id", userId)), cancellationToken);

    public Task CreateSessionAsync(SessionRecord session, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync($"INSERT INTO sessions ({SessionColumns}) VALUES (@id, @u, @h, @ca, @ea, NULL)", t, cancellationToken,
            ("@id", session.Id), ("@u", session.UserId), ("@h", session.RefreshHash), ("@ca", session.CreatedAt.ToUnixMs()), ("@ea", session.ExpiresAt.ToUnixMs())), cancellationToken);

    public Task<SessionRecord?> GetSessionAsync(string userId, string sessionId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {SessionColumns} FROM sessions WHERE id = @id AND user_id = @u", ReadSession, cancellationToken, ("@id", sessionId), ("@u", userId));

    public Task<SessionRecord?> RotateRefreshTokenAsync(string oldHash, string newHash, DateTimeOffset newExpiry, DateTimeOffset now, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            var rotated = await c.QuerySingleAsync(
                $"UPDATE sessions SET previous_hash = refresh_hash, refresh_hash = @new, expires_at = @ea WHERE refresh_hash = @old AND revoked_at IS NULL AND expires_at > @now RETURNING {SessionColumns}",
                t, ReadSession, cancellationToken, ("@new", newHash), ("@old", oldHash), ("@ea", newExpiry.ToUnixMs()), ("@now", now.ToUnixMs()));
            // A token that was already rotated away is being used again: someone holds a copy. The whole session ends
            // (OAuth 2.0 Security BCP, refresh token rotation), so the newer refresh token and its access tokens stop too.
            if (rotated is null)
                await c.ExecuteAsync("UPDATE sessions SET revoked_at = @now WHERE previous_hash = @old AND revoked_at IS NULL", t, cancellationToken,
                    ("@old", oldHash), ("@now", now.ToUnixMs()));
            return rotated;
        }, cancellationToken);

    public Task<bool> RevokeSessionAsync(string userId, string sessionId, DateTimeOffset now, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) => await c.ExecuteAsync("UPDATE sessions SET revoked_at = @now WHERE id = @id AND user_id = @u AND revoked_at IS NULL",
            t, cancellationToken, ("@id", sessionId), ("@u", userId), ("@now", now.ToUnixMs())) == 1, cancellationToken);

    public Task<string> GetOrCreateSigningKeyAsync(string candidateSecret, DateTimeOffset now, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            // One well-known row: nodes starting together all insert-or-keep the same one, so they all sign with one key.
            await c.ExecuteAsync("INSERT INTO signing_keys (id, secret, created_at) VALUES ('primary', @s, @ca) ON CONFLICT (id) DO NOTHING", t, cancellationToken,
                ("@s", candidateSecret), ("@ca", now.ToUnixMs()));
            return (await c.QuerySingleAsync("SELECT secret FROM signing_keys WHERE id = 'primary'", t, r => r.GetString(0), cancellationToken))!;
        }, cancellationToken);

    public Task CreateTicketAsync(string ticketHash, string userId, string sessionId, DateTimeOffset expiresAt, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            // Expired tickets are swept by whoever issues the next one: no timer needed.
            await c.ExecuteAsync("DELETE FROM ws_tickets WHERE expires_at < @now", t, cancellationToken, ("@now", expiresAt.AddMinutes(-5).ToUnixMs()));
            return await c.ExecuteAsync("INSERT INTO ws_tickets (ticket_hash, user_id, session_id, expires_at) VALUES (@h, @u, @s, @ea)", t, cancellationToken,
                ("@h", ticketHash), ("@u", userId), ("@s", sessionId), ("@ea", expiresAt.ToUnixMs()));
        }, cancellationToken);

    public async Task<(string UserId, string SessionId)?> ConsumeTicketAsync(string ticketHash, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var row = await Db.WriteAsync((c, t) => c.QuerySingleAsync(
            "DELETE FROM ws_tickets WHERE ticket_hash = @h RETURNING user_id, session_id, expires_at", t,
            r => new Tuple<string, string, long>(r.GetString(0), r.GetString(1), r.GetInt64(2)), cancellationToken, ("@h", ticketHash)), cancellationToken);
        return row is null || row.Item3 < now.ToUnixMs() ? null : (row.Item1, row.Item2);
    }
}
