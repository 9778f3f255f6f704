using System.Text.Json;
using Apex.Client;
using Apex.Server.Agents;
using Apex.Server.Auth;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Apex.Server.Threads;

/// <summary>
/// A user's own agents (<c>/api/agents</c>) and teams (<c>/api/teams</c>): the same format as the shipped team's file, validated
/// the same way (each problem named by its field), versioned (PUT writes a new version; a run records the one it used) and
/// owner-scoped; an admin may publish one as <c>shared</c> (visible to everyone, changed only by admins).
/// </summary>
internal static class AgentEndpoints
{
    /// <summary>The largest definition accepted, in characters of JSON.</summary>
    public const int MaxDefinitionChars = 64 * 1024;

    public static RouteGroupBuilder MapAgentEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api").RequireAuthorization().WithTags("Agents");
        group.MapGet("/agents", ListAgents);
        group.MapPost("/agents", CreateAgent);
        group.MapGet("/agents/{agentId}", GetAgent);
        group.MapPut("/agents/{agentId}", UpdateAgent);
        group.MapDelete("/agents/{agentId}", DeleteAgent);
        group.MapGet("/teams", ListTeams);
        group.MapPost("/teams", CreateTeam);
        group.MapGet("/teams/{teamId}", GetTeam);
        group.MapPut("/teams/{teamId}", UpdateTeam);
        group.MapDelete("/teams/{teamId}", DeleteTeam);
        return group;
    }

    private static Task<Ok<Page<AgentDto>>> ListAgents(CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        ListAsync(AgentKinds.Agent, user, store, cancellationToken);

    private static Task<Ok<Page<AgentDto>>> ListTeams(CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        ListAsync(AgentKinds.Team, user, store, cancellationToken);

    private static Task<Results<Ok<AgentDto>, NotFound>> GetAgent(string agentId, CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        GetAsync(AgentKinds.Agent, agentId, user, store, cancellationToken);

    private static Task<Results<Ok<AgentDto>, NotFound>> GetTeam(string teamId, CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        GetAsync(AgentKinds.Team, teamId, user, store, cancellationToken);

    private static Task<Results<Created<AgentDto>, ValidationProblem, ProblemHttpResult>> CreateAgent(JsonElement body, CurrentUser user, IAgentStore store,
        DefinitionChecks checks, AgentCatalog catalog, IdGenerator ids, TimeProvider time, IOptions<AgentOptions> options, CancellationToken cancellationToken) =>
        CreateAsync(AgentKinds.Agent, body, user, store, checks, catalog, ids, time, options.Value, cancellationToken);

    private static Task<Results<Created<AgentDto>, ValidationProblem, ProblemHttpResult>> CreateTeam(JsonElement body, CurrentUser user, IAgentStore store,
        DefinitionChecks checks, AgentCatalog catalog, IdGenerator ids, TimeProvider time, IOptions<AgentOptions> options, CancellationToken cancellationToken) =>
        CreateAsync(AgentKinds.Team, body, user, store, checks, catalog, ids, time, options.Value, cancellationToken);

    private static Task<Results<Ok<AgentDto>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateAgent(string agentId, JsonElement body, CurrentUser user, IAgentStore store,
        DefinitionChecks checks, AgentCatalog catalog, TimeProvider time, CancellationToken cancellationToken) =>
        UpdateAsync(AgentKinds.Agent, agentId, body, user, store, checks, catalog, time, cancellationToken);

    private static Task<Results<Ok<AgentDto>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateTeam(string teamId, JsonElement body, CurrentUser user, IAgentStore store,
        DefinitionChecks checks, AgentCatalog catalog, TimeProvider time, CancellationToken cancellationToken) =>
        UpdateAsync(AgentKinds.Team, teamId, body, user, store, checks, catalog, time, cancellationToken);

    private static Task<Results<NoContent, NotFound, ProblemHttpResult>> DeleteAgent(string agentId, CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        DeleteAsync(AgentKinds.Agent, agentId, user, store, cancellationToken);

    private static Task<Results<NoContent, NotFound, ProblemHttpResult>> DeleteTeam(string teamId, CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        DeleteAsync(AgentKinds.Team, teamId, user, store, cancellationToken);

    private static async Task<Ok<Page<AgentDto>>> ListAsync(string kind, CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        TypedResults.Ok(new Page<AgentDto>([.. (await store.ListAsync(user.Id, kind, cancellationToken)).Select(a => ToDto(a, user))], null));

    private static async Task<Results<Ok<AgentDto>, NotFound>> GetAsync(string kind, string id, CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        await store.GetAsync(user.Id, kind, id, cancellationToken) is { } found ? TypedResults.Ok(ToDto(found, user)) : TypedResults.NotFound();

    private static async Task<Results<Created<AgentDto>, ValidationProblem, ProblemHttpResult>> CreateAsync(string kind, JsonElement body, CurrentUser user, IAgentStore store,
        DefinitionChecks checks, AgentCatalog catalog, IdGenerator ids, TimeProvider time, AgentOptions options, CancellationToken cancellationToken)
    {
        var checkedBody = Check(kind, body, checks, catalog);
        if (checkedBody.Problem is { } problem) return problem;
        if (checkedBody.Shared && !user.IsAdmin) return OnlyAdmins();
        var now = time.GetUtcNow();
        var record = new AgentRecord(ids.NewId(), user.Id, kind, checkedBody.Name!, 1, checkedBody.Shared, checkedBody.Definition!, now, now);
        return await store.CreateAsync(record, options.MaxDefinitionsPerUser, cancellationToken) switch
        {
            AgentWriteOutcome.Saved => TypedResults.Created($"/api/{kind}s/{record.Id}", ToDto(record, user)),
            AgentWriteOutcome.NameTaken => NameTaken(record.Name),
            _ => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "definition_limit",
                detail: $"At most {options.MaxDefinitionsPerUser} agents and teams per user; delete one first."),
        };
    }

    private static async Task<Results<Ok<AgentDto>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateAsync(string kind, string id, JsonElement body, CurrentUser user,
        IAgentStore store, DefinitionChecks checks, AgentCatalog catalog, TimeProvider time, CancellationToken cancellationToken)
    {
        var checkedBody = Check(kind, body, checks, catalog);
        if (checkedBody.Problem is { } problem) return problem;
        var (outcome, saved) = await store.UpdateAsync(user.Id, user.IsAdmin, kind, id, checkedBody.Name!, checkedBody.Shared, checkedBody.Definition!, time.GetUtcNow(), cancellationToken);
        return outcome switch
        {
            AgentWriteOutcome.Saved => TypedResults.Ok(ToDto(saved!, user)),
            AgentWriteOutcome.Forbidden => OnlyAdmins(),
            AgentWriteOutcome.NameTaken => NameTaken(checkedBody.Name!),
            _ => TypedResults.NotFound(),
        };
    }

    private static async Task<Results<NoContent, NotFound, ProblemHttpResult>> DeleteAsync(string kind, string id, CurrentUser user, IAgentStore store, CancellationToken cancellationToken) =>
        await store.DeleteAsync(user.Id, user.IsAdmin, kind, id, cancellationToken) switch
        {
            AgentWriteOutcome.Saved => TypedResults.NoContent(),
            AgentWriteOutcome.Forbidden => OnlyAdmins(),
            _ => TypedResults.NotFound(),
        };

    private sealed record CheckedBody(string? Name, bool Shared, string? Definition, ValidationProblem? Problem);

    /// <summary>The body's definition checked as the shipped file is (tools must be ones the server offers now), and its <c>shared</c> flag.</summary>
    private static CheckedBody Check(string kind, JsonElement body, DefinitionChecks checks, AgentCatalog catalog)
    {
        static CheckedBody Refuse(string field, params string[] messages) => new(null, false, null, TypedResults.ValidationProblem(new Dictionary<string, string[]> { [field] = messages }));
        if (body.ValueKind != JsonValueKind.Object) return Refuse("$", $"an {kind} definition is a JSON object.");
        if (body.GetRawText().Length > MaxDefinitionChars) return Refuse("$", $"a definition is at most {MaxDefinitionChars} characters of JSON.");
        var shared = false;
        if (body.TryGetProperty("shared", out var s))
        {
            if (s.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) return Refuse("shared", "shared is true or false.");
            shared = s.GetBoolean();
        }
        var definition = WithoutShared(body);
        using var document = JsonDocument.Parse(definition);
        var reader = checks.ForUser();
        string? name;
        IReadOnlyList<DefinitionError> errors;
        if (kind == AgentKinds.Team)
        {
            var (team, teamErrors) = reader.ReadTeam(document.RootElement);
            (name, errors) = (team?.Name, teamErrors);
        }
        else
        {
            var (agent, agentErrors) = reader.ReadAgent(document.RootElement);
            (name, errors) = (agent?.Name, agentErrors);
        }
        if (errors.Count > 0)
            return new(null, false, null, TypedResults.ValidationProblem(errors.GroupBy(e => e.Field)
                .ToDictionary(g => g.Key, g => g.Select(e => e.Agent is null || kind == AgentKinds.Agent ? e.Message : $"agent '{e.Agent}': {e.Message}").ToArray())));
        if (name == catalog.Shipped.Name) return Refuse("name", $"'{name}' is the shipped team's name.");
        return new(name, shared, definition, null);
    }

    private static string WithoutShared(JsonElement body) => JsonWritten.Text(writer =>
    {
        writer.WriteStartObject();
        foreach (var property in body.EnumerateObject())
            if (property.Name != "shared") property.WriteTo(writer);
        writer.WriteEndObject();
    });

    private static AgentDto ToDto(AgentRecord a, CurrentUser user)
    {
        using var document = JsonDocument.Parse(a.Definition);
        return new AgentDto(a.Id, a.Kind, a.Name, a.Version, a.Shared, a.UserId == user.Id, document.RootElement.Clone(), a.CreatedAt, a.UpdatedAt);
    }

    private static ProblemHttpResult OnlyAdmins() =>
        TypedResults.Problem(statusCode: StatusCodes.Status403Forbidden, title: "admin_only", detail: "Only an admin publishes a shared agent or team, or changes one.");

    private static ProblemHttpResult NameTaken(string name) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "name_taken", detail: $"You already have an agent or team named '{name}'.");
}
