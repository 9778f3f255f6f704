using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Apex.Server.Threads;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Apex.Server.Runs;

internal static class RunEndpoints
{
    public static RouteGroupBuilder MapRunEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api").RequireAuthorization().WithTags("Runs");
        group.MapGet("/threads/{threadId}/runs", ListRuns);
        group.MapPost("/threads/{threadId}/messages", SendMessage);
        group.MapGet("/runs/{runId}", GetRun);
        group.MapPost("/runs/{runId}/cancel", CancelRun);
        return group;
    }

    private static async Task<Results<Ok<Page<RunDto>>, NotFound, ValidationProblem>> ListRuns(string threadId, int? limit, string? cursor, CurrentUser user,
        IApexStore store, CancellationToken cancellationToken)
    {
        if (Paging.Check(limit) is { } problem) return problem;
        if (await store.GetThreadAsync(user.Id, threadId, cancellationToken) is null) return TypedResults.NotFound();
        var take = Paging.Take(limit);
        var runs = await store.ListRunsAsync(user.Id, threadId, take + 1, cursor, cancellationToken);
        return TypedResults.Ok(Paging.Page(runs, take, r => r.Id, r => r.ToDto()));
    }

    private static async Task<Results<Accepted<SendMessageResponse>, NotFound, ProblemHttpResult>> SendMessage(string threadId, SendMessageRequest request,
        CurrentUser user, RunCoordinator coordinator, CancellationToken cancellationToken)
    {
        var (accepted, refused) = await coordinator.SubmitAsync(user, threadId, request.Content, request.Strategy, cancellationToken);
        if (accepted is not null)
            return TypedResults.Accepted($"/api/runs/{accepted.Run.Id}", new SendMessageResponse(accepted.Run.ToDto(), accepted.Message.ToDto()));
        return refused!.Code switch
        {
            "not_found" => TypedResults.NotFound(),
            "thread_busy" or "queue_full" => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: refused.Code, detail: refused.Message),
            "rate_limited" => TypedResults.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: refused.Code, detail: refused.Message),
            _ => TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: refused.Code, detail: refused.Message),
        };
    }

    private static async Task<Results<Ok<RunDto>, NotFound>> GetRun(string runId, CurrentUser user, IApexStore store, CancellationToken cancellationToken) =>
        await store.GetRunAsync(user.Id, runId, cancellationToken) is { } run ? TypedResults.Ok(run.ToDto()) : TypedResults.NotFound();

    private static async Task<Results<Accepted<RunDto>, Ok<RunDto>, NotFound, ProblemHttpResult>> CancelRun(string runId, CurrentUser user,
        RunCoordinator coordinator, CancellationToken cancellationToken)
    {
        var (outcome, run) = await coordinator.CancelAsync(user, runId, CancelReasons.User, cancellationToken);
        return outcome switch
        {
            CancelOutcome.NotFound => TypedResults.NotFound(),
            CancelOutcome.Cancelling => TypedResults.Accepted($"/api/runs/{runId}", run!.ToDto()),
            CancelOutcome.Cancelled or CancelOutcome.AlreadyCancelled => TypedResults.Ok(run!.ToDto() with { Status = RunStatus.Cancelled }),
            _ => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Run already finished", detail: $"The run ended as {run!.Status}; there is nothing to cancel."),
        };
    }

    public static RunDto ToDto(this RunRecord r) => new(r.Id, r.ThreadId, r.Status, r.Strategy, r.MessageId, r.CreatedAt, r.StartedAt, r.EndedAt, r.Error,
        r.Results is null ? null : System.Text.Json.JsonDocument.Parse(r.Results).RootElement.Clone());
}
