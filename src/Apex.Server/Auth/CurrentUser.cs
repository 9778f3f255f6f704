using System.Globalization;
using System.Security.Claims;
using Apex.Server.Storage;

namespace Apex.Server.Auth;

/// <summary>
/// The signed-in user of a request, bound from the validated credential's claims: which session (a sign-in's, or an
/// API key's), until when the credential is good (null: an API key without expiry), and whether it is an API key.
/// </summary>
internal sealed record CurrentUser(string Id, string SessionId, string Tier, DateTimeOffset? ExpiresAt = null, bool ViaApiKey = false, string Role = Roles.User)
{
    /// <summary>The authorization policy of the admin API: the account's role, read from the database with its session.</summary>
    public const string AdminPolicy = "admin";
    private const string RoleClaim = "apex_role";
    public const string SessionClaim = "sid";
    public const string TierClaim = "tier";
    private const string ExpiresClaim = "apex_exp";
    private const string ApiKeyClaim = "apex_key";

    public static ValueTask<CurrentUser?> BindAsync(HttpContext context) => ValueTask.FromResult(From(context.User));

    public static CurrentUser? From(ClaimsPrincipal principal) =>
        principal.FindFirstValue(ClaimTypes.NameIdentifier) is { } id && principal.FindFirstValue(SessionClaim) is { } sid
            ? new CurrentUser(id, sid, principal.FindFirstValue(TierClaim) ?? "free",
                long.TryParse(principal.FindFirstValue(ExpiresClaim), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null,
                principal.HasClaim(ApiKeyClaim, "true"), principal.FindFirstValue(RoleClaim) ?? Roles.User)
            : null;

    public bool IsAdmin => Role == Roles.Admin;

    public ClaimsPrincipal ToPrincipal(string scheme)
    {
        List<Claim> claims = [new(ClaimTypes.NameIdentifier, Id), new(SessionClaim, SessionId), new(TierClaim, Tier)];
        if (ExpiresAt is { } expires) claims.Add(new Claim(ExpiresClaim, expires.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)));
        if (ViaApiKey) claims.Add(new Claim(ApiKeyClaim, "true"));
        claims.Add(new Claim(RoleClaim, Role));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }
}
