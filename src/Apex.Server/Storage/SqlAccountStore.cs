using System.Data.Common;

namespace Apex.Server.Storage;

/// <summary>Accounts, sessions, API keys, security events, the signing key and socket tickets.</summary>
internal sealed class SqlAccountStore(Database db, StoreSignals signals, NodeIdentity node) : SqlStore(db), IAccountStore
{
    private const string ApiKeyColumns = "k.id, k.user_id, k.name, k.prefix, k.created_at, k.expires_at, k.last_used_at";

    public Task<bool> CreateUserAsync(UserRecord user, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) => await c.ExecuteAsync(
            $"INSERT INTO users ({UserColumns}) VALUES (@id, @e, @ne, @ph, @dn, @tier, @ca, 0, NULL, @role, NULL, NULL) ON CONFLICT (normalized_email) DO NOTHING", t, cancellationToken,
            ("@id", user.Id), ("@e", user.Email), ("@ne", user.NormalizedEmail), ("@ph", user.PasswordHash), ("@dn", user.DisplayName),
            ("@tier", user.Tier), ("@ca", user.CreatedAt.ToUnixMs()), ("@role", user.Role)) == 1, cancellationToken);

    public async Task<IReadOnlyList<UserRecord>> ListUsersAsync(string? emailContains, int limit, string? afterId, CancellationToken cancellationToken) =>
        // Admin only: across users by design; the caller is checked for the admin role before this runs.
        await ReadAsync($"""
            SELECT {UserColumns} FROM users
            WHERE (@q IS NULL OR normalized_email LIKE @q) AND (@after IS NULL OR id > @after) ORDER BY id LIMIT @limit
            """, ReadUser, cancellationToken, ("@q", emailContains is null ? null : "%" + emailContains.Trim().ToUpperInvariant() + "%"), ("@after", afterId), ("@limit", limit));

    public Task<UserRecord?> UpdateUserAsync(string userId, UserChange change, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            if (change.Tier is { } tier) await c.ExecuteAsync("UPDATE users SET tier = @v WHERE id = @id", t, cancellationToken, ("@id", userId), ("@v", tier));
            if (change.Role is { } role) await c.ExecuteAsync("UPDATE users SET role = @v WHERE id = @id", t, cancellationToken, ("@id", userId), ("@v", role));
            if (change.LockoutUntil is { } until)
                await c.ExecuteAsync("UPDATE users SET lockout_until = @v WHERE id = @id", t, cancellationToken, ("@id", userId), ("@v", until.ToUnixMs()));
            if (change.Unlock) await c.ExecuteAsync("UPDATE users SET lockout_until = NULL, failed_logins = 0 WHERE id = @id", t, cancellationToken, ("@id", userId));
            if (change.ClearBudget) await c.ExecuteAsync("UPDATE users SET token_budget = NULL, cost_budget = NULL WHERE id = @id", t, cancellationToken, ("@id", userId));
            if (change.TokenBudget is { } tokens) await c.ExecuteAsync("UPDATE users SET token_budget = @v WHERE id = @id", t, cancellationToken, ("@id", userId), ("@v", tokens));
            if (change.CostBudget is { } cost) await c.ExecuteAsync("UPDATE users SET cost_budget = @v WHERE id = @id", t, cancellationToken, ("@id", userId), ("@v", cost));
            return await c.QuerySingleAsync($"SELECT {UserColumns} FROM users WHERE id = @id", t, ReadUser, cancellationToken, ("@id", userId));
        }, cancellationToken);

    public Task<int> GrantRoleAsync(IReadOnlyCollection<string> normalizedEmails, string role, CancellationToken cancellationToken) =>
        normalizedEmails.Count == 0 ? Task.FromResult(0) : Db.WriteAsync((c, t) => c.ExecuteAsync(
            $"UPDATE users SET role = @role WHERE {Db.InList("normalized_email", "@emails")} AND role <> @role", t, cancellationToken,
            ("@role", role), ("@emails", Db.ListValue(normalizedEmails))), cancellationToken);

    public async Task<IReadOnlyList<string>> RevokeUserSessionsAsync(string userId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var revoked = await Db.WriteAsync(async (c, t) =>
        {
            var ids = await c.QueryAsync("UPDATE sessions SET revoked_at = @now WHERE user_id = @u AND revoked_at IS NULL RETURNING id", t, r => r.GetString(0), cancellationToken,
                ("@u", userId), ("@now", now.ToUnixMs()));
            // Revoked API keys are deleted too, so the user's key list shows what still works.
            await c.ExecuteAsync("DELETE FROM api_keys WHERE user_id = @u", t, cancellationToken, ("@u", userId));
            foreach (var id in ids) await NotifyRevokedAsync(c, t, id, cancellationToken);
            return ids;
        }, cancellationToken);
        foreach (var id in revoked) signals.OnSessionRevoked(id);
        return revoked;
    }

    public async Task<IReadOnlyList<SecurityEventRecord>> ListAuditAsync(string? userId, string? kind, int limit, string? beforeId, CancellationToken cancellationToken) =>
        // Admin only: the audit trail across users, newest first.
        await ReadAsync("""
            SELECT id, user_id, kind, at, address, detail, actor_id FROM security_events
            WHERE (@u IS NULL OR user_id = @u) AND (@k IS NULL OR kind = @k) AND (@before IS NULL OR id < @before) ORDER BY id DESC LIMIT @limit
            """, ReadSecurityEvent, cancellationToken, ("@u", userId), ("@k", kind), ("@before", beforeId), ("@limit", limit));

    public Task<int> PurgeSecurityEventsAsync(DateTimeOffset before, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync("DELETE FROM security_events WHERE at < @before", t, cancellationToken, ("@before", before.ToUnixMs())), cancellationToken);

    public Task<UserRecord?> FindUserByEmailAsync(string normalizedEmail, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {UserColumns} FROM users WHERE normalized_email = @ne", ReadUser, cancellationToken, ("@ne", normalizedEmail));

    public Task<UserRecord?> GetUserAsync(string userId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {UserColumns} FROM users WHERE id = @id", ReadUser, cancellationToken, ("@id", userId));

    public Task<bool> ReserveLoginAttemptAsync(string userId, int maxFailures, DateTimeOffset now, CancellationToken cancellationToken) =>
        // Counted before the password is checked, in one statement: parallel attempts cannot all pass a check made before
        // any of them is counted. At most maxFailures attempts are ever checked between two lockouts.
        Db.WriteAsync(async (c, t) => await c.ExecuteAsync("""
            UPDATE users SET failed_logins = failed_logins + 1, lockout_until = NULL
            WHERE id = @id AND failed_logins < @max AND (lockout_until IS NULL OR lockout_until <= @now)
            """, t, cancellationToken, ("@id", userId), ("@max", maxFailures), ("@now", now.ToUnixMs())) == 1, cancellationToken);

    public Task RecordLoginFailureAsync(string userId, int maxFailures, DateTimeOffset lockoutUntil, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync("""
            UPDATE users SET
              lockout_until = CASE WHEN failed_logins >= @max THEN @until ELSE lockout_until END,
              failed_logins = CASE WHEN failed_logins >= @max THEN 0 ELSE failed_logins END
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

    public Task<SessionOwner?> GetSessionOwnerAsync(string userId, string sessionId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {string.Join(", ", SessionColumns.Split(", ").Select(c => "s." + c))}, u.tier, u.role FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = @id AND s.user_id = @u",
            r => new SessionOwner(ReadSession(r), r.GetString(6), r.GetString(7)), cancellationToken, ("@id", sessionId), ("@u", userId));

    public async Task<RefreshOutcome> RotateRefreshTokenAsync(string oldHash, string newHash, DateTimeOffset newExpiry, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var outcome = await Db.WriteAsync<RefreshOutcome>(async (c, t) =>
        {
            var rotated = await c.QuerySingleAsync(
                $"UPDATE sessions SET previous_hash = refresh_hash, refresh_hash = @new, expires_at = @ea WHERE refresh_hash = @old AND revoked_at IS NULL AND expires_at > @now RETURNING {SessionColumns}",
                t, ReadSession, cancellationToken, ("@new", newHash), ("@old", oldHash), ("@ea", newExpiry.ToUnixMs()), ("@now", now.ToUnixMs()));
            if (rotated is not null) return new RefreshOutcome.Rotated(rotated);
            // A token that was already rotated away is being used again: someone holds a copy. The whole session ends
            // (OAuth 2.0 Security BCP, refresh token rotation), so the newer refresh token and its access tokens stop too.
            var reused = await c.QuerySingleAsync("UPDATE sessions SET revoked_at = @now WHERE previous_hash = @old AND revoked_at IS NULL RETURNING id, user_id", t,
                r => new RefreshOutcome.Reused(r.GetString(1), r.GetString(0)), cancellationToken, ("@old", oldHash), ("@now", now.ToUnixMs()));
            if (reused is null) return new RefreshOutcome.Unknown();
            await NotifyRevokedAsync(c, t, reused.SessionId, cancellationToken);
            return reused;
        }, cancellationToken);
        if (outcome is RefreshOutcome.Reused revoked) signals.OnSessionRevoked(revoked.SessionId);
        return outcome;
    }

    public async Task<bool> RevokeSessionAsync(string userId, string sessionId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var revoked = await Db.WriteAsync(async (c, t) =>
        {
            if (await c.ExecuteAsync("UPDATE sessions SET revoked_at = @now WHERE id = @id AND user_id = @u AND revoked_at IS NULL",
                t, cancellationToken, ("@id", sessionId), ("@u", userId), ("@now", now.ToUnixMs())) != 1) return false;
            await NotifyRevokedAsync(c, t, sessionId, cancellationToken);
            return true;
        }, cancellationToken);
        if (revoked) signals.OnSessionRevoked(sessionId);
        return revoked;
    }

    public async Task<bool> CreateApiKeyAsync(ApiKeyRecord key, string secretHash, int maxKeysPerUser, CancellationToken cancellationToken) =>
        await Db.WriteAsync(async (c, t) =>
        {
            // Counted in the same transaction as the insert, under the user's row lock (SQLite has one writer): parallel creates cannot pass the cap together.
            if (Db.LockRows(skipLocked: false) is { Length: > 0 } lockRows)
                await c.ExecuteAsync($"SELECT id FROM users WHERE id = @u {lockRows}", t, cancellationToken, ("@u", key.UserId));
            if (await c.ScalarAsync("SELECT COUNT(*) FROM api_keys WHERE user_id = @u", t, cancellationToken, ("@u", key.UserId)) >= maxKeysPerUser) return false;
            await c.ExecuteAsync($"INSERT INTO sessions ({SessionColumns}) VALUES (@id, @u, @h, @ca, @ea, NULL)", t, cancellationToken,
                ("@id", key.Id), ("@u", key.UserId), ("@h", SessionRecord.ApiKeyMarker + key.Id), ("@ca", key.CreatedAt.ToUnixMs()), ("@ea", (key.ExpiresAt ?? SessionRecord.Never).ToUnixMs()));
            await c.ExecuteAsync("INSERT INTO api_keys (id, user_id, name, prefix, secret_hash, created_at, expires_at, last_used_at) VALUES (@id, @u, @n, @p, @h, @ca, CAST(@ea AS BIGINT), NULL)",
                t, cancellationToken, ("@id", key.Id), ("@u", key.UserId), ("@n", key.Name), ("@p", key.Prefix), ("@h", secretHash),
                ("@ca", key.CreatedAt.ToUnixMs()), ("@ea", key.ExpiresAt.ToUnixMs()));
            return true;
        }, cancellationToken);

    public async Task<IReadOnlyList<ApiKeyRecord>> ListApiKeysAsync(string userId, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {ApiKeyColumns} FROM api_keys k WHERE k.user_id = @u ORDER BY k.id", ReadApiKey, cancellationToken, ("@u", userId));

    public async Task<bool> DeleteApiKeyAsync(string userId, string keyId, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var deleted = await Db.WriteAsync(async (c, t) =>
        {
            if (await c.ExecuteAsync("DELETE FROM api_keys WHERE id = @id AND user_id = @u", t, cancellationToken, ("@id", keyId), ("@u", userId)) != 1) return false;
            // The session row stays, revoked: whatever still holds the key's session (a socket, a ticket) sees it revoked.
            await c.ExecuteAsync("UPDATE sessions SET revoked_at = @now WHERE id = @id AND user_id = @u AND revoked_at IS NULL", t, cancellationToken,
                ("@id", keyId), ("@u", userId), ("@now", now.ToUnixMs()));
            await NotifyRevokedAsync(c, t, keyId, cancellationToken);
            return true;
        }, cancellationToken);
        if (deleted) signals.OnSessionRevoked(keyId);
        return deleted;
    }

    public Task<ApiKeyOwner?> FindApiKeyAsync(string secretHash, DateTimeOffset now, CancellationToken cancellationToken) =>
        ReadSingleAsync($"""
            SELECT {ApiKeyColumns}, u.tier, u.role
            FROM api_keys k JOIN sessions s ON s.id = k.id AND s.user_id = k.user_id JOIN users u ON u.id = k.user_id
            WHERE k.secret_hash = @h AND s.revoked_at IS NULL AND s.expires_at > @now
            """, r => new ApiKeyOwner(ReadApiKey(r), r.GetString(7), r.GetString(8)), cancellationToken, ("@h", secretHash), ("@now", now.ToUnixMs()));

    public Task<bool> TouchApiKeyAsync(string userId, string keyId, DateTimeOffset now, TimeSpan every, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) => await c.ExecuteAsync(
            "UPDATE api_keys SET last_used_at = @now WHERE id = @id AND user_id = @u AND (last_used_at IS NULL OR last_used_at <= @since)", t, cancellationToken,
            ("@id", keyId), ("@u", userId), ("@now", now.ToUnixMs()), ("@since", (now - every).ToUnixMs())) == 1, cancellationToken);

    public Task<int> PurgeSessionsAsync(DateTimeOffset before, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            await c.ExecuteAsync("DELETE FROM ws_tickets WHERE expires_at < @before", t, cancellationToken, ("@before", before.ToUnixMs()));
            return await c.ExecuteAsync("DELETE FROM sessions WHERE expires_at < @before OR revoked_at < @before", t, cancellationToken, ("@before", before.ToUnixMs()));
        }, cancellationToken);

    public Task AddSecurityEventAsync(SecurityEventRecord record, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.ExecuteAsync("INSERT INTO security_events (id, user_id, kind, at, address, detail, actor_id) VALUES (@id, @u, @k, @at, @a, @d, @actor)", t, cancellationToken,
            ("@id", record.Id), ("@u", record.UserId), ("@k", record.Kind), ("@at", record.At.ToUnixMs()), ("@a", record.Address), ("@d", record.Detail), ("@actor", record.ActorId)), cancellationToken);

    public async Task<IReadOnlyList<SecurityEventRecord>> ListSecurityEventsAsync(string userId, int limit, string? beforeId, CancellationToken cancellationToken) =>
        await ReadAsync("""
            SELECT id, user_id, kind, at, address, detail, actor_id FROM security_events
            WHERE user_id = @u AND (@before IS NULL OR id < @before) ORDER BY id DESC LIMIT @limit
            """, ReadSecurityEvent, cancellationToken, ("@u", userId), ("@before", beforeId), ("@limit", limit));

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

    private Task NotifyRevokedAsync(DbConnection c, DbTransaction? t, string sessionId, CancellationToken cancellationToken) =>
        Db.NotifyAsync(c, t, StoreSignals.SessionsChannel, $"{node.Id}|{sessionId}", cancellationToken);

    private static SecurityEventRecord ReadSecurityEvent(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.Time(3), r.StringOrNull(4), r.StringOrNull(5), r.StringOrNull(6));

    private static ApiKeyRecord ReadApiKey(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.Time(4), r.TimeOrNull(5), r.TimeOrNull(6));
}
