using System.Security.Claims;

namespace Apex.Server.Auth;

/// <summary>The signed-in user of a request, bound from the validated token's claims.</summary>
internal sealed record CurrentUser(string Id, string SessionId, string Tier)
{
    public const string SessionClaim = "sid";
    public const string TierClaim = "tier";

    public static ValueTask<CurrentUser?> BindAsync(HttpContext context) => ValueTask.FromResult(From(context.User));

    public static CurrentUser? From(ClaimsPrincipal principal) =>
        principal.FindFirstValue(ClaimTypes.NameIdentifier) is { } id && principal.FindFirstValue(SessionClaim) is { } sid
            ? new CurrentUser(id, sid, principal.FindFirstValue(TierClaim) ?? "free")
            : null;

    public ClaimsPrincipal ToPrincipal(string scheme) =>
        new(new ClaimsIdentity([new Claim(ClaimTypes.NameIdentifier, Id), new Claim(SessionClaim, SessionId), new Claim(TierClaim, Tier)], scheme));
}
