using System.Globalization;
using System.Security.Claims;

namespace Apex.Server.Auth;

/// <summary>
/// The signed-in user of a request, bound from the validated credential's claims: which session (a sign-in's, or an
/// API key's), until when the credential is good (null: an API key without expiry), and whether it is an API key.
/// </summary>
internal sealed record CurrentUser(string Id, string SessionId, string Tier, DateTimeOffset? ExpiresAt = null, bool ViaApiKey = false)
{
    public const string SessionClaim = "sid";
    public const string TierClaim = "tier";
    private const string ExpiresClaim = "apex_exp";
    private const string ApiKeyClaim = "apex_key";

    public static ValueTask<CurrentUser?> BindAsync(HttpContext context) => ValueTask.FromResult(From(context.User));

    public static CurrentUser? From(ClaimsPrincipal principal) =>
        principal.FindFirstValue(ClaimTypes.NameIdentifier) is { } id && principal.FindFirstValue(SessionClaim) is { } sid
            ? new CurrentUser(id, sid, principal.FindFirstValue(TierClaim) ?? "free",
                long.TryParse(principal.FindFirstValue(ExpiresClaim), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null,
                principal.HasClaim(ApiKeyClaim, "true"))
            : null;

    public ClaimsPrincipal ToPrincipal(string scheme)
    {
        List<Claim> claims = [new(ClaimTypes.NameIdentifier, Id), new(SessionClaim, SessionId), new(TierClaim, Tier)];
        if (ExpiresAt is { } expires) claims.Add(new Claim(ExpiresClaim, expires.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture)));
        if (ViaApiKey) claims.Add(new Claim(ApiKeyClaim, "true"));
        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }
}
