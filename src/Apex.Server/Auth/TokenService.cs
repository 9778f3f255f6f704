using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Apex.Client;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Apex.Server.Auth;

/// <summary>
/// The keys of access tokens, loaded once at start-up with the host's token, never with a request's. The current key
/// signs; it and the previous keys validate, each found by its <c>kid</c>. The current key comes from settings
/// (<c>Apex:Auth:SigningKey</c> or <c>SigningKeyFile</c>), or else is one row in the database shared by every node.
/// </summary>
internal sealed class SigningKey(IAccountStore accounts, IOptions<AuthOptions> options, TimeProvider time)
{
    /// <summary>The <c>kid</c> of the key kept in the database.</summary>
    public const string DatabaseKeyId = "primary";
    private Keys? _keys;

    private sealed record Keys(SymmetricSecurityKey Current, FrozenDictionary<string, SymmetricSecurityKey> ById);

    public SymmetricSecurityKey Current => Loaded.Current;

    /// <summary>The key a token names; none for an unknown or missing <c>kid</c>.</summary>
    public IEnumerable<SecurityKey> Resolve(string? kid) => kid is not null && Loaded.ById.TryGetValue(kid, out var key) ? [key] : [];

    private Keys Loaded => Volatile.Read(ref _keys) ?? throw new InvalidOperationException("The signing key is not loaded yet; InitializeApexAuthAsync loads it at start-up.");

    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var configured = settings.SigningKey ?? (settings.SigningKeyFile is { } file ? (await File.ReadAllTextAsync(file, cancellationToken)).Trim() : null);
        SymmetricSecurityKey current;
        if (configured is null)
        {
            var secret = await accounts.GetOrCreateSigningKeyAsync(Convert.ToBase64String(RandomNumberGenerator.GetBytes(64)), time.GetUtcNow(), cancellationToken);
            current = new SymmetricSecurityKey(Convert.FromBase64String(secret)) { KeyId = DatabaseKeyId };
        }
        else
        {
            current = FromSetting(configured, "Apex:Auth:SigningKey");
        }
        var all = new Dictionary<string, SymmetricSecurityKey> { [current.KeyId] = current };
        foreach (var previous in settings.PreviousSigningKeys) all.TryAdd(FromSetting(previous, "Apex:Auth:PreviousSigningKeys").KeyId, FromSetting(previous, "Apex:Auth:PreviousSigningKeys"));
        Volatile.Write(ref _keys, new Keys(current, all.ToFrozenDictionary(StringComparer.Ordinal)));
    }

    /// <summary>A configured key: base64 of at least 32 bytes, named by a hash of itself (so every node derives the same <c>kid</c>).</summary>
    public static SymmetricSecurityKey FromSetting(string base64, string setting)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(base64.Trim());
        }
        catch (FormatException)
        {
            throw new OptionsValidationException(setting, typeof(AuthOptions), [$"{setting} must be base64 (e.g. openssl rand -base64 48)."]);
        }
        if (bytes.Length < 32) throw new OptionsValidationException(setting, typeof(AuthOptions), [$"{setting} must hold at least 32 bytes; it has {bytes.Length}."]);
        return new SymmetricSecurityKey(bytes) { KeyId = "k-" + Convert.ToHexStringLower(SHA256.HashData(bytes))[..12] };
    }
}

/// <summary>
/// Issues and checks tokens. Access tokens are JWTs (HS256, Microsoft.IdentityModel) signed with the key kept in the
/// database, so they survive restarts and work on every node; each names its session, and a revoked session (logout)
/// stops its access tokens at once. The same validation serves the JwtBearer handler (REST, SSE) and the socket's
/// bearer header and <c>bearer.</c> subprotocol. Refresh tokens are random, stored hashed and rotated on every use.
/// API keys (<c>apex_…</c>) are random too, stored hashed, and accepted wherever an access token is.
/// </summary>
internal sealed class TokenService
{
    /// <summary>What every API key starts with, so a bearer can be told apart from a JWT without trying both.</summary>
    public const string ApiKeyPrefix = "apex_";
    /// <summary>A key's last use (and its <c>api_key_used</c> security event) is written at most this often.</summary>
    public static readonly TimeSpan ApiKeyUseInterval = TimeSpan.FromMinutes(5);
    private const string Issuer = "apex";
    private readonly IAccountStore _store;
    private readonly SecurityLog _security;
    private readonly SessionCache _sessions;
    private readonly IdGenerator _ids;
    private readonly TimeProvider _time;
    private readonly IOptions<AuthOptions> _options;
    private readonly SigningKey _key;
    private readonly RedisConnection _redis;
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false, MapInboundClaims = false };

    /// <summary>
    /// Access tokens whose signature and claims this node checked, until they expire. A client sends the same token with
    /// each request of a run (create a thread, send, open its stream), and checking it again each time was ~2.5% of the
    /// server's CPU under load. Only the check of the token's bytes is skipped: the session is still checked on every request.
    /// </summary>
    private readonly ConcurrentDictionary<string, (ClaimsIdentity Identity, DateTimeOffset Expires)> _checked = new(StringComparer.Ordinal);
    private const int MaxCheckedTokens = 10_000;

    public TokenService(IAccountStore store, SecurityLog security, SessionCache sessions, IdGenerator ids, TimeProvider time, IOptions<AuthOptions> options, SigningKey key,
        RedisConnection redis)
    {
        _redis = redis;
        _sessions = sessions;
        _store = store;
        _security = security;
        _ids = ids;
        _time = time;
        _options = options;
        _key = key;
        Parameters = new TokenValidationParameters
        {
            ValidIssuer = Issuer,
            ValidateAudience = false,
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            IssuerSigningKeyResolver = (_, _, kid, _) => _key.Resolve(kid),
            RequireExpirationTime = true,
            // The injected clock decides expiry (tests move it; every node agrees with its database's tokens).
            LifetimeValidator = (_, expires, _, _) => expires is { } e && e > _time.GetUtcNow().UtcDateTime,
            NameClaimType = JwtRegisteredClaimNames.Sub,
        };
    }

    /// <summary>How access tokens are validated, shared with the JwtBearer handler.</summary>
    public TokenValidationParameters Parameters { get; }

    public async Task<TokenResponse> IssueAsync(UserRecord user, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var refresh = NewSecret();
        var session = new SessionRecord(_ids.NewId(), user.Id, Hash(refresh), now, now + _options.Value.RefreshTokenLifetime, null);
        await _store.CreateSessionAsync(session, cancellationToken);
        return Tokens(user, session.Id, refresh, now);
    }

    public async Task<TokenResponse?> RefreshAsync(string refreshToken, string? address, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var next = NewSecret();
        switch (await _store.RotateRefreshTokenAsync(Hash(refreshToken), Hash(next), now + _options.Value.RefreshTokenLifetime, now, cancellationToken))
        {
            case RefreshOutcome.Rotated rotated:
                var user = await _store.GetUserAsync(rotated.Session.UserId, cancellationToken);
                if (user is null) return null;
                await _security.RecordAsync(user.Id, SecurityEventKinds.Refresh, address, null, cancellationToken);
                return Tokens(user, rotated.Session.Id, next, now);
            case RefreshOutcome.Reused reused:
                await _security.RecordAsync(reused.UserId, SecurityEventKinds.RefreshReuse, address, $"session {reused.SessionId} revoked", cancellationToken);
                return null;
            default:
                return null;
        }
    }

    /// <summary>
    /// An access token (signature, issuer, expiry, live session) or an API key (live, unexpired). Returns the user, or the
    /// reason it failed. <paramref name="address"/> goes into the key's <c>api_key_used</c> security event.
    /// </summary>
    public async Task<(CurrentUser? User, string? Failure)> ValidateAsync(string token, string? address, CancellationToken cancellationToken)
    {
        if (token.StartsWith(ApiKeyPrefix, StringComparison.Ordinal))
            return await ValidateApiKeyAsync(token, address, cancellationToken) is { } keyUser ? (keyUser, null) : (null, "unknown, expired or deleted API key");
        if (!IsCompact(token)) return (null, "malformed token");
        if (TryGetChecked(token, out var identity)) return await CheckSessionAsync(identity, cancellationToken);
        var result = await _handler.ValidateTokenAsync(token, Parameters);
        if (!result.IsValid) return (null, Describe(result.Exception));
        var checkedSession = await CheckSessionAsync(result.ClaimsIdentity, cancellationToken);
        if (checkedSession.User is not null) RememberChecked(token, result.ClaimsIdentity);
        return checkedSession;
    }

    /// <summary>The identity of an access token this node validated before and that has not expired since.</summary>
    public bool TryGetChecked(string token, out ClaimsIdentity identity)
    {
        identity = null!;
        if (!_checked.TryGetValue(token, out var hit)) return false;
        if (hit.Expires <= _time.GetUtcNow())
        {
            _checked.TryRemove(token, out _);
            return false;
        }
        identity = hit.Identity;
        return true;
    }

    /// <summary>Keeps a token that passed every check (signature, issuer, expiry, its session) until its expiry.</summary>
    public void RememberChecked(string token, ClaimsIdentity identity)
    {
        if (UnixSeconds(identity, JwtRegisteredClaimNames.Exp) is not { } expires) return;
        // Many distinct tokens must not grow it without bound: past the cap it starts over (each is checked once again).
        if (_checked.Count >= MaxCheckedTokens) _checked.Clear();
        _checked[token] = (identity, expires);
    }

    /// <summary>
    /// A compact JWS exactly as this server writes it: three unpadded base64url parts. Padding, whitespace or anything
    /// else that a lenient decoder would skip is refused before the signature is looked at.
    /// </summary>
    public static bool IsCompact(string token)
    {
        var dots = 0;
        var partLength = 0;
        foreach (var c in token)
        {
            if (c == '.')
            {
                if (partLength == 0) return false;
                dots++;
                partLength = 0;
            }
            else if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_') partLength++;
            else return false;
        }
        return dots == 2 && partLength > 0;
    }

    public async Task<CurrentUser?> ValidateApiKeyAsync(string key, string? address, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (await _store.FindApiKeyAsync(Hash(key), now, cancellationToken) is not { } owner) return null;
        if (await _store.TouchApiKeyAsync(owner.Key.UserId, owner.Key.Id, now, ApiKeyUseInterval, cancellationToken))
            await _security.RecordAsync(owner.Key.UserId, SecurityEventKinds.ApiKeyUsed, address, $"{owner.Key.Name} ({owner.Key.Prefix}…)", cancellationToken);
        return new CurrentUser(owner.Key.UserId, owner.Key.Id, owner.Tier, owner.Key.ExpiresAt, ViaApiKey: true, owner.Role);
    }

    /// <summary>Creates an API key for the user; null when the user already has <paramref name="maxKeys"/>. The secret is in the result only.</summary>
    public async Task<(ApiKeyRecord Key, string Secret)?> IssueApiKeyAsync(string userId, string name, DateTimeOffset? expiresAt, int maxKeys, CancellationToken cancellationToken)
    {
        var secret = ApiKeyPrefix + NewSecret();
        var key = new ApiKeyRecord(_ids.NewId(), userId, name, secret[..12], _time.GetUtcNow(), expiresAt, null);
        return await _store.CreateApiKeyAsync(key, Hash(secret), maxKeys, cancellationToken) ? (key, secret) : null;
    }

    /// <summary>
    /// The user of a validated token, if its session is still live. Only what the server can confirm counts: the tier
    /// is the account's in the database (not the token's claim), and a token whose lifetime exceeds what this server
    /// issues is refused whatever it says.
    /// </summary>
    public async Task<(CurrentUser? User, string? Failure)> CheckSessionAsync(ClaimsIdentity identity, CancellationToken cancellationToken)
    {
        var sub = identity.FindFirst(JwtRegisteredClaimNames.Sub)?.Value;
        var sid = identity.FindFirst(CurrentUser.SessionClaim)?.Value;
        if (sub is null || sid is null || UnixSeconds(identity, JwtRegisteredClaimNames.Exp) is not { } expires || UnixSeconds(identity, JwtRegisteredClaimNames.Iat) is not { } issued)
            return (null, "malformed token");
        if (expires - issued > _options.Value.AccessTokenLifetime + LifetimeSlack || issued > _time.GetUtcNow() + LifetimeSlack) return (null, "token lifetime not issued by this server");
        var owner = await _sessions.GetAsync(sub, sid, cancellationToken);
        if (owner is null || owner.Session.RevokedAt is not null || owner.Session.IsApiKey) return (null, "session revoked");
        return (new CurrentUser(sub, sid, owner.Tier, expires, Role: owner.Role), null);
    }

    /// <summary>Rounding of JWT times to seconds, and clocks of nodes a little apart.</summary>
    private static readonly TimeSpan LifetimeSlack = TimeSpan.FromSeconds(5);

    private static DateTimeOffset? UnixSeconds(ClaimsIdentity identity, string claim) =>
        long.TryParse(identity.FindFirst(claim)?.Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var seconds)
            ? DateTimeOffset.FromUnixTimeSeconds(seconds) : null;

    public static string Describe(Exception? failure) => failure switch
    {
        SecurityTokenInvalidLifetimeException or SecurityTokenExpiredException or SecurityTokenNoExpirationException => "token expired",
        SecurityTokenInvalidSignatureException or SecurityTokenSignatureKeyNotFoundException => "invalid signature",
        SecurityTokenInvalidIssuerException => "invalid issuer",
        _ => "malformed token",
    };

    public async Task<string> IssueTicketAsync(CurrentUser user, CancellationToken cancellationToken)
    {
        var ticket = NewSecret();
        var lifetime = _options.Value.WsTicketLifetime;
        if (_redis.IsAvailable)
        {
            try
            {
                // In Redis, the ticket expires by itself and is taken with GETDEL: single-use across nodes with no database round trip.
                if (await _redis.Database.StringSetAsync(TicketKey(ticket), $"{user.Id}|{user.SessionId}", lifetime, When.NotExists).WaitAsync(cancellationToken)) return ticket;
            }
            catch (Exception ex) when (RedisConnection.IsFailure(ex))
            {
                _redis.ReportFailure(ex);
            }
        }
        await _store.CreateTicketAsync(Hash(ticket), user.Id, user.SessionId, _time.GetUtcNow() + lifetime, cancellationToken);
        return ticket;
    }

    public async Task<CurrentUser?> RedeemTicketAsync(string ticket, CancellationToken cancellationToken)
    {
        if (await ConsumeTicketAsync(ticket, cancellationToken) is not { } o) return null;
        if (await _store.GetSessionOwnerAsync(o.UserId, o.SessionId, cancellationToken) is not { Session: { RevokedAt: null } session } owner) return null;
        // A ticket stands for the credential it was asked with: a socket opened with it re-authenticates (reauth) within an
        // access token's lifetime, or at its API key's expiry.
        await _security.RecordAsync(o.UserId, SecurityEventKinds.TicketUsed, null, null, cancellationToken);
        if (session.IsApiKey) return new CurrentUser(o.UserId, session.Id, owner.Tier, session.ExpiresAt >= SessionRecord.Never ? null : session.ExpiresAt, ViaApiKey: true, owner.Role);
        return new CurrentUser(o.UserId, session.Id, owner.Tier, _time.GetUtcNow() + _options.Value.AccessTokenLifetime, Role: owner.Role);
    }

    /// <summary>A ticket from Redis (where it was issued while Redis was in use), else from the database (issued without Redis).</summary>
    private async Task<(string UserId, string SessionId)?> ConsumeTicketAsync(string ticket, CancellationToken cancellationToken)
    {
        if (_redis.IsAvailable)
        {
            try
            {
                if ((string?)await _redis.Database.StringGetDeleteAsync(TicketKey(ticket)).WaitAsync(cancellationToken) is { } owner && owner.Split('|') is [var userId, var sessionId])
                    return (userId, sessionId);
            }
            catch (Exception ex) when (RedisConnection.IsFailure(ex))
            {
                _redis.ReportFailure(ex);
            }
        }
        return await _store.ConsumeTicketAsync(Hash(ticket), _time.GetUtcNow(), cancellationToken);
    }

    private RedisKey TicketKey(string ticket) => _redis.Key("ticket", Hash(ticket));

    public static string Hash(string secret) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(secret)));

    private TokenResponse Tokens(UserRecord user, string sessionId, string refresh, DateTimeOffset now)
    {
        var lifetime = _options.Value.AccessTokenLifetime;
        var access = _handler.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            IssuedAt = now.UtcDateTime,
            NotBefore = now.UtcDateTime,
            Expires = (now + lifetime).UtcDateTime,
            Claims = new Dictionary<string, object>
            {
                [JwtRegisteredClaimNames.Sub] = user.Id,
                [CurrentUser.SessionClaim] = sessionId,
                [CurrentUser.TierClaim] = user.Tier,
            },
            SigningCredentials = new SigningCredentials(_key.Current, SecurityAlgorithms.HmacSha256),
        });
        return new TokenResponse(access, refresh, "Bearer", (int)lifetime.TotalSeconds, user.ToDto());
    }

    private static string NewSecret() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(32));
}
