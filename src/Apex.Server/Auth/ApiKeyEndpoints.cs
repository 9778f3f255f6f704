using Apex.Client;
using Apex.Server.Api;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Apex.Server.Auth;

/// <summary>API keys for programs (the secret shown once, stored hashed) and the account's security events.</summary>
internal static class ApiKeyEndpoints
{
    public static RouteGroupBuilder MapApiKeyEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/keys").RequireAuthorization().WithTags("Auth");
        group.MapGet("/", ListKeys);
        group.MapPost("/", CreateKey);
        group.MapDelete("/{keyId}", DeleteKey);
        app.MapGet("/api/auth/events", ListSecurityEvents).RequireAuthorization().WithTags("Auth");
        return group;
    }

    private static async Task<Ok<Page<ApiKeyDto>>> ListKeys(CurrentUser user, IAccountStore store, CancellationToken cancellationToken) =>
        TypedResults.Ok(new Page<ApiKeyDto>([.. (await store.ListApiKeysAsync(user.Id, cancellationToken)).Select(ToDto)], null));

    private static async Task<Results<Created<CreatedApiKeyDto>, ValidationProblem, ProblemHttpResult>> CreateKey(CreateApiKeyRequest? request, CurrentUser user,
        TokenService tokens, SecurityLog security, TimeProvider time, IOptions<AuthOptions> options, HttpContext context, CancellationToken cancellationToken)
    {
        // A leaked key must not be able to mint more keys that outlive its deletion.
        if (user.ViaApiKey)
            return TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "Signed-in session required", detail: "API keys are created from a signed-in session, not with another key.");
        var name = request?.Name?.Trim() ?? "";
        var errors = new Dictionary<string, string[]>();
        if (name.Length is 0 or > 100) errors["name"] = ["A name of 1 to 100 characters is required."];
        if (request?.ExpiresAt is { } expires && expires <= time.GetUtcNow()) errors["expires_at"] = ["expires_at must be in the future."];
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);

        var max = options.Value.MaxApiKeysPerUser;
        if (await tokens.IssueApiKeyAsync(user.Id, name, request!.ExpiresAt, max, cancellationToken) is not { } issued)
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Too many API keys", detail: $"At most {max} API keys per user; delete one first.");
        await security.RecordAsync(user.Id, SecurityEventKinds.ApiKeyCreated, context.Connection.RemoteIpAddress?.ToString(), $"{name} ({issued.Key.Prefix}…)", cancellationToken);
        var key = issued.Key;
        return TypedResults.Created($"/api/keys/{key.Id}", new CreatedApiKeyDto(key.Id, key.Name, issued.Secret, key.Prefix, key.CreatedAt, key.ExpiresAt));
    }

    private static async Task<Results<NoContent, NotFound>> DeleteKey(string keyId, CurrentUser user, IAccountStore store, SecurityLog security, TimeProvider time,
        HttpContext context, CancellationToken cancellationToken)
    {
        if (!await store.DeleteApiKeyAsync(user.Id, keyId, time.GetUtcNow(), cancellationToken)) return TypedResults.NotFound();
        await security.RecordAsync(user.Id, SecurityEventKinds.ApiKeyDeleted, context.Connection.RemoteIpAddress?.ToString(), keyId, cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<Page<SecurityEventDto>>, ValidationProblem>> ListSecurityEvents(int? limit, string? cursor, CurrentUser user, IAccountStore store,
        CancellationToken cancellationToken)
    {
        if (Paging.Check(limit) is { } problem) return problem;
        var take = Paging.Take(limit);
        return TypedResults.Ok(Paging.Page(await store.ListSecurityEventsAsync(user.Id, take + 1, cursor, cancellationToken), take, e => e.Id,
            e => new SecurityEventDto(e.Id, e.Kind, e.At, e.Address, e.Detail)));
    }

    private static ApiKeyDto ToDto(ApiKeyRecord key) => new(key.Id, key.Name, key.Prefix, key.CreatedAt, key.ExpiresAt, key.LastUsedAt);
}
