using System.Net.Mail;
using Apex.Client;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;

namespace Apex.Server.Auth;

internal static class AuthEndpoints
{
    /// <summary>The rate limit of sign-in requests (register, login, refresh) per client address.</summary>
    public const string RateLimitPolicy = "auth";

    public static RouteGroupBuilder MapAuthEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/auth").WithTags("Auth");
        group.MapPost("/register", Register).RequireRateLimiting(RateLimitPolicy);
        group.MapPost("/login", Login).RequireRateLimiting(RateLimitPolicy);
        group.MapPost("/refresh", Refresh).RequireRateLimiting(RateLimitPolicy);
        group.MapPost("/logout", Logout).RequireAuthorization();
        group.MapGet("/me", Me).RequireAuthorization();
        app.MapPost("/api/ws-ticket", IssueTicket).RequireAuthorization().WithTags("Auth");
        return group;
    }

    private static async Task<Results<Created<TokenResponse>, ValidationProblem, ProblemHttpResult>> Register(RegisterRequest request, IAccountStore store,
        TokenService tokens, IPasswordHasher<UserRecord> hasher, SecurityLog security, IdGenerator ids, TimeProvider time, IOptions<AuthOptions> options,
        HttpContext context, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        var email = request.Email?.Trim() ?? "";
        if (!IsEmail(email)) errors["email"] = ["A valid email address is required."];
        if ((request.Password?.Length ?? 0) < options.Value.MinPasswordLength) errors["password"] = [$"The password must have at least {options.Value.MinPasswordLength} characters."];
        else if (request.Password!.Length > 128) errors["password"] = ["The password must have at most 128 characters."];
        else if (CommonPasswords.Contains(request.Password) || string.Equals(request.Password.Trim(), email, StringComparison.OrdinalIgnoreCase)
            || string.Equals(request.Password.Trim(), email.Split('@')[0], StringComparison.OrdinalIgnoreCase))
            errors["password"] = ["This password is among the most common ones (or is your email); choose another."];
        if (request.DisplayName is { Length: > 100 }) errors["display_name"] = ["The display name must have at most 100 characters."];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var admin = options.Value.Admins.Any(a => Normalize(a) == Normalize(email));
        var draft = new UserRecord(ids.NewId(), email, Normalize(email), "", string.IsNullOrWhiteSpace(request.DisplayName) ? email.Split('@')[0] : request.DisplayName.Trim(),
            options.Value.DefaultTier, time.GetUtcNow(), 0, null, admin ? Roles.Admin : Roles.User);
        var user = draft with { PasswordHash = hasher.HashPassword(draft, request.Password!) };
        if (!await store.CreateUserAsync(user, cancellationToken))
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Email already registered", detail: "An account with this email exists; sign in instead.");
        await security.RecordAsync(user.Id, SecurityEventKinds.Register, context.Connection.RemoteIpAddress?.ToString(), admin ? "admin (Apex:Auth:Admins)" : null, cancellationToken);
        return TypedResults.Created("/api/auth/me", await tokens.IssueAsync(user, cancellationToken));
    }

    private static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> Login(LoginRequest request, IAccountStore store, TokenService tokens,
        IPasswordHasher<UserRecord> hasher, DecoyPassword decoy, SecurityLog security, TimeProvider time, IOptions<AuthOptions> options, HttpContext context,
        CancellationToken cancellationToken)
    {
        var invalid = TypedResults.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Invalid credentials", detail: "The email or password is wrong.");
        var address = context.Connection.RemoteIpAddress?.ToString();
        var user = await store.FindUserByEmailAsync(Normalize(request.Email ?? ""), cancellationToken);
        if (user is null || string.IsNullOrEmpty(request.Password))
        {
            // The same hashing work as a wrong password: the answer's timing does not tell which emails have accounts.
            decoy.Verify(request.Password ?? "");
            return invalid;
        }
        var now = time.GetUtcNow();
        var limits = options.Value;
        if (user.LockoutUntil is not { } until || until <= now)
        {
            if (await store.ReserveLoginAttemptAsync(user.Id, limits.MaxFailedLogins, now, cancellationToken))
            {
                if (hasher.VerifyHashedPassword(user, user.PasswordHash, request.Password) == PasswordVerificationResult.Failed)
                {
                    await store.RecordLoginFailureAsync(user.Id, limits.MaxFailedLogins, now + limits.LockoutDuration, cancellationToken);
                    await security.RecordAsync(user.Id, SecurityEventKinds.LoginFailed, address, null, cancellationToken);
                    return invalid;
                }
                await store.ResetLoginFailuresAsync(user.Id, cancellationToken);
                await security.RecordAsync(user.Id, SecurityEventKinds.Login, address, null, cancellationToken);
                return TypedResults.Ok(await tokens.IssueAsync(user, cancellationToken));
            }
            // Every allowed attempt is taken (failed, or being checked right now): this one is not checked at all.
            until = (await store.GetUserAsync(user.Id, cancellationToken))?.LockoutUntil is { } set && set > now ? set : now + limits.LockoutDuration;
        }
        await security.RecordAsync(user.Id, SecurityEventKinds.LoginLocked, address, null, cancellationToken);
        return TypedResults.Problem(statusCode: StatusCodes.Status423Locked, title: "Account locked", detail: $"Too many failed sign-ins. Try again after {until:u}.");
    }

    private static async Task<Results<Ok<TokenResponse>, ProblemHttpResult>> Refresh(RefreshRequest request, TokenService tokens, HttpContext context, CancellationToken cancellationToken) =>
        string.IsNullOrEmpty(request.RefreshToken) || await tokens.RefreshAsync(request.RefreshToken, context.Connection.RemoteIpAddress?.ToString(), cancellationToken) is not { } refreshed
            ? TypedResults.Problem(statusCode: StatusCodes.Status401Unauthorized, title: "Invalid refresh token", detail: "The refresh token is unknown, expired, revoked or already used.")
            : TypedResults.Ok(refreshed);

    private static async Task<NoContent> Logout(CurrentUser user, IAccountStore store, SecurityLog security, TimeProvider time, HttpContext context, CancellationToken cancellationToken)
    {
        // Revoking reaches this session's open sockets and SSE streams on every node (SessionWatch).
        // Logging out with an API key deletes the key: a key's session cannot be signed into again.
        var ended = user.ViaApiKey
            ? await store.DeleteApiKeyAsync(user.Id, user.SessionId, time.GetUtcNow(), cancellationToken)
            : await store.RevokeSessionAsync(user.Id, user.SessionId, time.GetUtcNow(), cancellationToken);
        if (ended)
            await security.RecordAsync(user.Id, user.ViaApiKey ? SecurityEventKinds.ApiKeyDeleted : SecurityEventKinds.Logout, context.Connection.RemoteIpAddress?.ToString(),
                user.ViaApiKey ? user.SessionId : null, cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<UserDto>, NotFound>> Me(CurrentUser user, IAccountStore store, CancellationToken cancellationToken) =>
        await store.GetUserAsync(user.Id, cancellationToken) is { } record ? TypedResults.Ok(record.ToDto()) : TypedResults.NotFound();

    private static async Task<Ok<WsTicketResponse>> IssueTicket(CurrentUser user, TokenService tokens, IOptions<AuthOptions> options, CancellationToken cancellationToken) =>
        TypedResults.Ok(new WsTicketResponse(await tokens.IssueTicketAsync(user, cancellationToken), (int)options.Value.WsTicketLifetime.TotalSeconds));

    public static string Normalize(string email) => email.Trim().ToUpperInvariant();

    private static bool IsEmail(string email) =>
        email.Length is > 3 and <= 254 && MailAddress.TryCreate(email, out var parsed) && parsed.Address == email && email.Contains('.', StringComparison.Ordinal);
}
