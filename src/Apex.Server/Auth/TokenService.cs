using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Auth;

/// <summary>
/// Issues and checks tokens. Access tokens are compact JWTs (HS256) signed with a key kept in the
/// database, so they survive restarts and work on every node; each names its session, and a
/// revoked session (logout) stops its access tokens at once. Refresh tokens are random, stored
/// hashed and rotated on every use. JwtBearer is not in the package mirror, so this is the small
/// part of it the server needs.
/// </summary>
internal sealed class TokenService(IAccountStore store, IdGenerator ids, TimeProvider time, IOptions<AuthOptions> options)
{
    private const string Issuer = "apex";
    private readonly Lock _gate = new();
    private Task<byte[]>? _key;

    public async Task<TokenResponse> IssueAsync(UserRecord user, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var refresh = NewSecret();
        var session = new SessionRecord(ids.NewId(), user.Id, Hash(refresh), now, now + options.Value.RefreshTokenLifetime, null);
        await store.CreateSessionAsync(session, cancellationToken);
        return await TokensAsync(user, session.Id, refresh, now, cancellationToken);
    }

    public async Task<TokenResponse?> RefreshAsync(string refreshToken, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var next = NewSecret();
        var session = await store.RotateRefreshTokenAsync(Hash(refreshToken), Hash(next), now + options.Value.RefreshTokenLifetime, now, cancellationToken);
        if (session is null) return null;
        var user = await store.GetUserAsync(session.UserId, cancellationToken);
        return user is null ? null : await TokensAsync(user, session.Id, next, now, cancellationToken);
    }

    /// <summary>Checks signature, expiry and that the session is still live. Returns the user, or the reason it failed.</summary>
    public async Task<(CurrentUser? User, string? Failure)> ValidateAsync(string token, CancellationToken cancellationToken)
    {
        var parts = token.Split('.');
        if (parts.Length != 3) return (null, "malformed token");
        var key = await KeyAsync(cancellationToken);
        var expected = HMACSHA256.HashData(key, Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]));
        byte[] signature, payload;
        try
        {
            signature = Base64Url.DecodeFromChars(parts[2]);
            payload = Base64Url.DecodeFromChars(parts[1]);
        }
        catch (FormatException)
        {
            return (null, "malformed token");
        }
        if (!CryptographicOperations.FixedTimeEquals(signature, expected)) return (null, "invalid signature");

        string? sub, sid, tier;
        long exp;
        try
        {
            using var document = JsonDocument.Parse(payload);
            var root = document.RootElement;
            sub = root.GetProperty("sub").GetString();
            sid = root.GetProperty("sid").GetString();
            tier = root.GetProperty("tier").GetString();
            exp = root.GetProperty("exp").GetInt64();
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return (null, "malformed token");
        }
        if (sub is null || sid is null || tier is null) return (null, "malformed token");
        if (DateTimeOffset.FromUnixTimeSeconds(exp) <= time.GetUtcNow()) return (null, "token expired");
        var session = await store.GetSessionAsync(sub, sid, cancellationToken);
        if (session is null || session.RevokedAt is not null) return (null, "session revoked");
        return (new CurrentUser(sub, sid, tier), null);
    }

    public async Task<string> IssueTicketAsync(CurrentUser user, CancellationToken cancellationToken)
    {
        var ticket = NewSecret();
        await store.CreateTicketAsync(Hash(ticket), user.Id, user.SessionId, time.GetUtcNow() + options.Value.WsTicketLifetime, cancellationToken);
        return ticket;
    }

    public async Task<CurrentUser?> RedeemTicketAsync(string ticket, CancellationToken cancellationToken)
    {
        var owner = await store.ConsumeTicketAsync(Hash(ticket), time.GetUtcNow(), cancellationToken);
        if (owner is not { } o) return null;
        var session = await store.GetSessionAsync(o.UserId, o.SessionId, cancellationToken);
        var user = await store.GetUserAsync(o.UserId, cancellationToken);
        return session is null || session.RevokedAt is not null || user is null ? null : new CurrentUser(user.Id, session.Id, user.Tier);
    }

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    private async Task<TokenResponse> TokensAsync(UserRecord user, string sessionId, string refresh, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var lifetime = options.Value.AccessTokenLifetime;
        var access = await SignAsync(user, sessionId, now, now + lifetime, cancellationToken);
        return new TokenResponse(access, refresh, "Bearer", (int)lifetime.TotalSeconds, user.ToDto());
    }

    private async Task<string> SignAsync(UserRecord user, string sessionId, DateTimeOffset now, DateTimeOffset expires, CancellationToken cancellationToken)
    {
        var header = Base64Url.EncodeToString("""{"alg":"HS256","typ":"JWT"}"""u8);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("iss", Issuer);
            writer.WriteString("sub", user.Id);
            writer.WriteString("sid", sessionId);
            writer.WriteString("tier", user.Tier);
            writer.WriteNumber("iat", now.ToUnixTimeSeconds());
            writer.WriteNumber("exp", expires.ToUnixTimeSeconds());
            writer.WriteEndObject();
        }
        var payload = Base64Url.EncodeToString(buffer.ToArray());
        var signature = HMACSHA256.HashData(await KeyAsync(cancellationToken), Encoding.ASCII.GetBytes(header + "." + payload));
        return header + "." + payload + "." + Base64Url.EncodeToString(signature);
    }

    /// <summary>The signing key: the first one in the database, created by whichever node asks first.</summary>
    private Task<byte[]> KeyAsync(CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (_key is null || _key.IsFaulted) _key = LoadKeyAsync(cancellationToken);
            return _key;
        }
    }

    private async Task<byte[]> LoadKeyAsync(CancellationToken cancellationToken)
    {
        var secret = await store.GetOrCreateSigningKeyAsync(Convert.ToBase64String(RandomNumberGenerator.GetBytes(64)), time.GetUtcNow(), cancellationToken);
        return Convert.FromBase64String(secret);
    }

    private static string NewSecret() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
}
