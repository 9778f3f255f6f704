using Apex.Client;
using Apex.Server.Api;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Apex.Server.Runs;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Apex.Server.Threads;

internal static class RunEndpoints
{
    public static RouteGroupBuilder MapRunEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api").RequireAuthorization().WithTags("Runs");
        group.MapGet("/threads/{threadId}/runs", ListRuns);
        group.MapPost("/threads/{threadId}/messages", SendMessage);
        group.MapGet("/runs/{runId}", GetRun);
        group.MapPost("/runs/{runId}/cancel", CancelRun);
        group.MapGet("/runs/{runId}/approvals", ListApprovals);
        group.MapPost("/runs/{runId}/approvals/{callId}", DecideApproval);
        return group;
    }

    private static async Task<Results<Ok<Page<RunDto>>, NotFound, ValidationProblem>> ListRuns(string threadId, int? limit, string? cursor, CurrentUser user,
        IThreadStore threads, IRunStore store, CancellationToken cancellationToken)
    {
        if (Paging.Check(limit) is { } problem) return problem;
        if (await threads.GetThreadAsync(user.Id, threadId, cancellationToken) is null) return TypedResults.NotFound();
        var take = Paging.Take(limit);
        var runs = await store.ListRunsAsync(user.Id, threadId, take + 1, cursor, cancellationToken);
        return TypedResults.Ok(Paging.Page(runs, take, r => r.Id, r => r.ToDto()));
    }

    private static async Task<Results<Accepted<SendMessageResponse>, NotFound, ProblemHttpResult>> SendMessage(string threadId, SendMessageRequest request,
        CurrentUser user, RunCoordinator coordinator, CancellationToken cancellationToken)
    {
        return await coordinator.SubmitAsync(user.Id, threadId, request.Content, request.Strategy, request.Agent, null, cancellationToken) switch
        {
            Submission.Accepted accepted => TypedResults.Accepted($"/api/runs/{accepted.Run.Id}", new SendMessageResponse(accepted.Run.ToDto(), accepted.Message.ToDto())),
            Submission.Refused { Code: "not_found" } => TypedResults.NotFound(),
            Submission.Refused { Code: "thread_busy" or "queue_full" or "thread_limit" } refused => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: refused.Code, detail: refused.Message),
            Submission.Refused { Code: "rate_limited" } refused => TypedResults.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: refused.Code, detail: refused.Message),
            Submission.Refused refused => TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: refused.Code, detail: refused.Message),
            _ => throw new InvalidOperationException("Submission is a closed type."),
        };
    }

    private static async Task<Results<Ok<RunDto>, NotFound>> GetRun(string runId, CurrentUser user, IRunStore store, CancellationToken cancellationToken) =>
        await store.GetRunAsync(user.Id, runId, cancellationToken) is { } run ? TypedResults.Ok(run.ToDto()) : TypedResults.NotFound();

    private static async Task<Results<Accepted<RunDto>, Ok<RunDto>, NotFound, ProblemHttpResult>> CancelRun(string runId, CurrentUser user,
        RunCoordinator coordinator, CancellationToken cancellationToken)
    {
        return await coordinator.CancelAsync(user.Id, runId, CancelReasons.User, cancellationToken) switch
        {
            CancelResult.Cancelling c => TypedResults.Accepted($"/api/runs/{runId}", c.Run.ToDto()),
            CancelResult.Cancelled c => TypedResults.Ok(c.Run.ToDto() with { Status = RunStatus.Cancelled }),
            CancelResult.AlreadyCancelled c => TypedResults.Ok(c.Run.ToDto() with { Status = RunStatus.Cancelled }),
            CancelResult.AlreadyFinished f => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Run already finished",
                detail: $"The run ended as {f.Run.Status}; there is nothing to cancel."),
            _ => TypedResults.NotFound(),
        };
    }

    /// <summary>The run's tool calls that wait or waited for approval, oldest first.</summary>
    private static async Task<Results<Ok<IReadOnlyList<ApprovalDto>>, NotFound>> ListApprovals(string runId, CurrentUser user, IRunStore runs, IApprovalStore approvals,
        CancellationToken cancellationToken)
    {
        if (await runs.GetRunAsync(user.Id, runId, cancellationToken) is null) return TypedResults.NotFound();
        var list = await approvals.ListAsync(user.Id, runId, cancellationToken);
        return TypedResults.Ok<IReadOnlyList<ApprovalDto>>([.. list.Select(a => a.ToDto())]);
    }

    /// <summary>Approves (optionally with edited arguments) or rejects (optionally with a reason) a tool call that waits; the run resumes.</summary>
    private static async Task<Results<Ok<ApprovalDto>, NotFound, ProblemHttpResult>> DecideApproval(string runId, string callId, ApprovalDecisionRequest request,
        CurrentUser user, RunCoordinator coordinator, CancellationToken cancellationToken)
    {
        if (request.Decision is not ("approve" or "reject"))
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "invalid_payload", detail: "decision is approve or reject.");
        return await coordinator.DecideAsync(user.Id, runId, callId, request.Decision == "approve", request.Arguments, request.Reason, cancellationToken) switch
        {
            ApprovalAnswer.Stored stored => TypedResults.Ok(stored.Approval.ToDto()),
            ApprovalAnswer.Refused { Code: "not_found" } => TypedResults.NotFound(),
            ApprovalAnswer.Refused { Code: "already_decided" } refused => TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: refused.Code, detail: refused.Message),
            ApprovalAnswer.Refused refused => TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: refused.Code, detail: refused.Message),
            _ => throw new InvalidOperationException("ApprovalAnswer is a closed type."),
        };
    }
}
