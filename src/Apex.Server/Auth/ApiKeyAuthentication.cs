using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;

namespace Apex.Server.Auth;

/// <summary>
/// Authenticates <c>Authorization: Bearer apex_…</c> (an API key). The default scheme is a policy that sends such
/// bearers here and every other one to the JwtBearer handler, so a key works wherever an access token does.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, TokenService tokens)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    /// <summary>The default scheme: picks <see cref="SchemeName"/> or JwtBearer by the bearer's shape.</summary>
    public const string PolicyScheme = "Apex";

    public static string? SelectScheme(HttpContext context) =>
        IsApiKey(context.Request.Headers.Authorization.ToString()) ? SchemeName : JwtBearerDefaults.AuthenticationScheme;

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var header = Request.Headers.Authorization.ToString();
        if (!IsApiKey(header)) return AuthenticateResult.NoResult();
        var user = await tokens.ValidateApiKeyAsync(header["Bearer ".Length..].Trim(), Context.Connection.RemoteIpAddress?.ToString(), Context.RequestAborted);
        return user is null
            ? AuthenticateResult.Fail("unknown, expired or deleted API key")
            : AuthenticateResult.Success(new AuthenticationTicket(user.ToPrincipal(SchemeName), SchemeName));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\", error_description=\"unknown, expired or deleted API key\"";
        return Task.CompletedTask;
    }

    private static bool IsApiKey(string header) =>
        header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) && header.AsSpan("Bearer ".Length).TrimStart().StartsWith(TokenService.ApiKeyPrefix, StringComparison.Ordinal);
}
