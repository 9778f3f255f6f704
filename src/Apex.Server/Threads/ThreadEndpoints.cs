using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Api;
using Apex.Server.Runs;
using Apex.Server.Storage;
using Apex.Server.Execution;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Apex.Server.Threads;

internal static class ThreadEndpoints
{
    public static ProblemHttpResult TooManyThreads(LimitsOptions limits) =>
        TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Too many threads", type: "thread_limit",
            detail: $"At most {limits.MaxThreadsPerUser} threads per user; delete one first.");

    public static RouteGroupBuilder MapThreadEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/threads").RequireAuthorization().WithTags("Threads");
        group.MapGet("/", ListThreads);
        group.MapPost("/", CreateThread);
        group.MapGet("/{threadId}", GetThread);
        group.MapPatch("/{threadId}", UpdateThread);
        group.MapDelete("/{threadId}", DeleteThread);
        group.MapGet("/{threadId}/messages", ListMessages);
        return group;
    }

    private static async Task<Results<Ok<Page<ThreadDto>>, ValidationProblem>> ListThreads(int? limit, string? cursor, CurrentUser user, IThreadStore store, CancellationToken cancellationToken)
    {
        if (Paging.Check(limit) is { } problem) return problem;
        var take = Paging.Take(limit);
        return TypedResults.Ok(Paging.Page(await store.ListThreadsAsync(user.Id, take + 1, cursor, cancellationToken), take, t => t.Id, t => t.ToDto()));
    }

    private static async Task<Results<Created<ThreadDto>, ValidationProblem, ProblemHttpResult>> CreateThread(CreateThreadRequest? request, CurrentUser user, IThreadStore store,
        IdGenerator ids, TimeProvider time, IOptions<LimitsOptions> limits, CancellationToken cancellationToken)
    {
        if (Validate(request?.Title, request?.Strategy) is { } problem) return problem;
        var now = time.GetUtcNow();
        var thread = new ThreadRecord(ids.NewId(), user.Id, string.IsNullOrWhiteSpace(request?.Title) ? "New thread" : request.Title.Trim(),
            request?.Strategy ?? QueueStrategies.Enqueue, 0, now, now);
        if (!await store.CreateThreadAsync(thread, limits.Value.MaxThreadsPerUser, cancellationToken)) return TooManyThreads(limits.Value);
        return TypedResults.Created($"/api/threads/{thread.Id}", thread.ToDto());
    }

    private static async Task<Results<Ok<ThreadDto>, NotFound>> GetThread(string threadId, CurrentUser user, IThreadStore store, CancellationToken cancellationToken) =>
        await store.GetThreadAsync(user.Id, threadId, cancellationToken) is { } thread ? TypedResults.Ok(thread.ToDto()) : TypedResults.NotFound();

    private static async Task<Results<Ok<ThreadDto>, NotFound, ValidationProblem>> UpdateThread(string threadId, UpdateThreadRequest request, CurrentUser user,
        IThreadStore store, TimeProvider time, CancellationToken cancellationToken)
    {
        if (Validate(request.Title, request.Strategy) is { } problem) return problem;
        if (request.Title is not null && string.IsNullOrWhiteSpace(request.Title))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["title"] = ["The title must not be empty."] });
        return await store.UpdateThreadAsync(user.Id, threadId, request.Title?.Trim(), request.Strategy, time.GetUtcNow(), cancellationToken) is { } thread
            ? TypedResults.Ok(thread.ToDto()) : TypedResults.NotFound();
    }

    private static async Task<Results<NoContent, NotFound>> DeleteThread(string threadId, CurrentUser user, RunCoordinator coordinator, CancellationToken cancellationToken) =>
        await coordinator.DeleteThreadAsync(user.Id, threadId, cancellationToken) ? TypedResults.NoContent() : TypedResults.NotFound();

    private static async Task<Results<Ok<Page<MessageDto>>, NotFound, ValidationProblem>> ListMessages(string threadId, int? limit, string? cursor, CurrentUser user,
        IThreadStore store, CancellationToken cancellationToken)
    {
        if (Paging.Check(limit) is { } problem) return problem;
        if (await store.GetThreadAsync(user.Id, threadId, cancellationToken) is null) return TypedResults.NotFound();
        var take = Paging.Take(limit);
        return TypedResults.Ok(Paging.Page(await store.ListMessagesAsync(user.Id, threadId, take + 1, cursor, cancellationToken), take, m => m.Id, m => m.ToDto()));
    }

    private static ValidationProblem? Validate(string? title, string? strategy)
    {
        var errors = new Dictionary<string, string[]>();
        if (title is { Length: > 200 }) errors["title"] = ["The title must have at most 200 characters."];
        if (strategy is not null && !QueueStrategies.IsValid(strategy)) errors["strategy"] = ["The strategy must be enqueue, reject or interrupt."];
        return errors.Count > 0 ? TypedResults.ValidationProblem(errors) : null;
    }
}
