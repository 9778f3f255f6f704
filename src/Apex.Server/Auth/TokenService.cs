using System.Buffers.Text;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Apex.Client;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Apex.Server.Auth;

/// <summary>
/// The signing key of access tokens: one row in the database shared by every node, loaded once at start-up with the
/// host's token, never with a request's (a request that hangs up must not leave a cancelled load behind).
/// </summary>
internal sealed class SigningKey(IAccountStore accounts, TimeProvider time)
{
    private SymmetricSecurityKey? _key;

    public SymmetricSecurityKey Current =>
        Volatile.Read(ref _key) ?? throw new InvalidOperationException("The signing key is not loaded yet; InitializeApexAuthAsync loads it at start-up.");

    public async Task LoadAsync(CancellationToken cancellationToken)
    {
        var secret = await accounts.GetOrCreateSigningKeyAsync(Convert.ToBase64String(RandomNumberGenerator.GetBytes(64)), time.GetUtcNow(), cancellationToken);
        Volatile.Write(ref _key, new SymmetricSecurityKey(Convert.FromBase64String(secret)) { KeyId = "primary" });
    }
}

/// <summary>
/// Issues and checks tokens. Access tokens are JWTs (HS256, Microsoft.IdentityModel) signed with the key kept in the
/// database, so they survive restarts and work on every node; each names its session, and a revoked session (logout)
/// stops its access tokens at once. The same validation serves the JwtBearer handler (REST, SSE) and the socket's
/// bearer header and <c>bearer.</c> subprotocol. Refresh tokens are random, stored hashed and rotated on every use.
/// </summary>
internal sealed class TokenService
{
    private const string Issuer = "apex";
    private readonly IAccountStore _store;
    private readonly IdGenerator _ids;
    private readonly TimeProvider _time;
    private readonly IOptions<AuthOptions> _options;
    private readonly SigningKey _key;
    private readonly JsonWebTokenHandler _handler = new() { SetDefaultTimesOnTokenCreation = false, MapInboundClaims = false };

    public TokenService(IAccountStore store, IdGenerator ids, TimeProvider time, IOptions<AuthOptions> options, SigningKey key)
    {
        _store = store;
        _ids = ids;
        _time = time;
        _options = options;
        _key = key;
        Parameters = new TokenValidationParameters
        {
            ValidIssuer = Issuer,
            ValidateAudience = false,
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            IssuerSigningKeyResolver = (_, _, _, _) => [_key.Current],
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

    public async Task<TokenResponse?> RefreshAsync(string refreshToken, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        var next = NewSecret();
        var session = await _store.RotateRefreshTokenAsync(Hash(refreshToken), Hash(next), now + _options.Value.RefreshTokenLifetime, now, cancellationToken);
        if (session is null) return null;
        var user = await _store.GetUserAsync(session.UserId, cancellationToken);
        return user is null ? null : Tokens(user, session.Id, next, now);
    }

    /// <summary>Checks signature, issuer, expiry and that the session is still live. Returns the user, or the reason it failed.</summary>
    public async Task<(CurrentUser? User, string? Failure)> ValidateAsync(string token, CancellationToken cancellationToken)
    {
        var result = await _handler.ValidateTokenAsync(token, Parameters);
        if (!result.IsValid) return (null, Describe(result.Exception));
        return await CheckSessionAsync(result.ClaimsIdentity, cancellationToken);
    }

    /// <summary>The user of a validated token, if its session is still live.</summary>
    public async Task<(CurrentUser? User, string? Failure)> CheckSessionAsync(ClaimsIdentity identity, CancellationToken cancellationToken)
    {
        var sub = identity.FindFirst(JwtRegisteredClaimNames.Sub)?.Value;
        var sid = identity.FindFirst(CurrentUser.SessionClaim)?.Value;
        var tier = identity.FindFirst(CurrentUser.TierClaim)?.Value;
        if (sub is null || sid is null || tier is null) return (null, "malformed token");
        var session = await _store.GetSessionAsync(sub, sid, cancellationToken);
        if (session is null || session.RevokedAt is not null) return (null, "session revoked");
        return (new CurrentUser(sub, sid, tier), null);
    }

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
        await _store.CreateTicketAsync(Hash(ticket), user.Id, user.SessionId, _time.GetUtcNow() + _options.Value.WsTicketLifetime, cancellationToken);
        return ticket;
    }

    public async Task<CurrentUser?> RedeemTicketAsync(string ticket, CancellationToken cancellationToken)
    {
        var owner = await _store.ConsumeTicketAsync(Hash(ticket), _time.GetUtcNow(), cancellationToken);
        if (owner is not { } o) return null;
        var session = await _store.GetSessionAsync(o.UserId, o.SessionId, cancellationToken);
        var user = await _store.GetUserAsync(o.UserId, cancellationToken);
        return session is null || session.RevokedAt is not null || user is null ? null : new CurrentUser(user.Id, session.Id, user.Tier);
    }

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
