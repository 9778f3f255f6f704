using Apex.Client;
using Apex.Server.Api;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Apex.Server.Runs;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Apex.Server.Admin;

/// <summary>
/// The admin API (role <c>admin</c>; 403 to everyone else): accounts (find, tier, role, lock, budget, sessions), runs of
/// every user (the stuck-run view, cancel), usage per user, and the audit trail. These are the only queries that read
/// across users; each admin action is itself written to the audit trail with the admin as its actor.
/// </summary>
internal static class AdminEndpoints
{
    /// <summary>How long an admin's lock holds: until an admin unlocks the account.</summary>
    private static readonly TimeSpan AdminLock = TimeSpan.FromDays(365 * 100);

    public static RouteGroupBuilder MapAdminEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/admin").RequireAuthorization(CurrentUser.AdminPolicy).WithTags("Admin");
        group.MapGet("/users", ListUsers);
        group.MapGet("/users/{userId}", GetUser);
        group.MapPatch("/users/{userId}", UpdateUser);
        group.MapPost("/users/{userId}/revoke-sessions", RevokeSessions);
        group.MapGet("/runs", ListRuns);
        group.MapPost("/runs/{runId}/cancel", CancelRun);
        group.MapGet("/usage", Usage);
        group.MapGet("/audit", Audit);
        return group;
    }

    private static async Task<Results<Ok<Page<AdminUserDto>>, ValidationProblem>> ListUsers(string? q, int? limit, string? cursor, IAccountStore store, CancellationToken cancellationToken)
    {
        if (Paging.Check(limit) is { } problem) return problem;
        var take = Paging.Take(limit);
        return TypedResults.Ok(Paging.Page(await store.ListUsersAsync(string.IsNullOrWhiteSpace(q) ? null : q, take + 1, cursor, cancellationToken), take, u => u.Id, ToDto));
    }

    private static async Task<Results<Ok<AdminUserDto>, NotFound>> GetUser(string userId, IAccountStore store, CancellationToken cancellationToken) =>
        await store.GetUserAsync(userId, cancellationToken) is { } user ? TypedResults.Ok(ToDto(user)) : TypedResults.NotFound();

    private static async Task<Results<Ok<AdminUserDto>, NotFound, ValidationProblem, ProblemHttpResult>> UpdateUser(string userId, AdminUserUpdate? update, CurrentUser admin,
        IAccountStore store, SessionCache sessions, SecurityLog audit, TimeProvider time, HttpContext context, CancellationToken cancellationToken)
    {
        var errors = new Dictionary<string, string[]>();
        if (update is null) errors["body"] = ["A JSON body with the fields to change is required."];
        else
        {
            if (update.Tier is not null && !Tiers.IsValid(update.Tier)) errors["tier"] = ["tier must be free, pro or enterprise."];
            if (update.Role is not null && !Roles.IsValid(update.Role)) errors["role"] = ["role must be user or admin."];
            if (update.TokenBudget is < 0) errors["token_budget"] = ["token_budget must not be negative."];
            if (update.CostBudgetUsd is < 0 or double.NaN or double.PositiveInfinity) errors["cost_budget_usd"] = ["cost_budget_usd must be a non-negative number."];
        }
        if (errors.Count > 0) return TypedResults.ValidationProblem(errors);
        if (userId == admin.Id && (update!.Role == Roles.User || update.Locked == true))
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "Not on yourself", detail: "An admin cannot demote or lock their own account; ask another admin.");
        if (await store.GetUserAsync(userId, cancellationToken) is not { } before) return TypedResults.NotFound();

        var now = time.GetUtcNow();
        var change = new UserChange(update!.Tier, update.Role, update.Locked == true ? now + AdminLock : null, update.Locked == false, update.TokenBudget, update.CostBudgetUsd, update.ClearBudget);
        var after = (await store.UpdateUserAsync(userId, change, cancellationToken))!;
        // This node reads the account again at its next request; other nodes within SessionCache.Lifetime.
        sessions.Forget(userId);
        var address = context.Connection.RemoteIpAddress?.ToString();
        if (before.Tier != after.Tier) await audit.RecordByAsync(admin.Id, userId, SecurityEventKinds.TierChanged, address, $"{before.Tier} -> {after.Tier}", cancellationToken);
        if (before.Role != after.Role) await audit.RecordByAsync(admin.Id, userId, SecurityEventKinds.RoleChanged, address, $"{before.Role} -> {after.Role}", cancellationToken);
        if (update.Locked == false) await audit.RecordByAsync(admin.Id, userId, SecurityEventKinds.Unlocked, address, null, cancellationToken);
        if (update.Locked == true)
        {
            // A lock also ends what the account has open: its sessions, keys, sockets and streams.
            var revoked = await store.RevokeUserSessionsAsync(userId, now, cancellationToken);
            await audit.RecordByAsync(admin.Id, userId, SecurityEventKinds.Locked, address, $"{revoked.Count} session(s) revoked", cancellationToken);
        }
        if (before.TokenBudget != after.TokenBudget || before.CostBudget != after.CostBudget)
            await audit.RecordByAsync(admin.Id, userId, SecurityEventKinds.BudgetChanged, address, $"tokens {after.TokenBudget?.ToString() ?? "tier"}, cost {after.CostBudget?.ToString() ?? "tier"}", cancellationToken);
        return TypedResults.Ok(ToDto(after));
    }

    private static async Task<Results<Ok<RevokedSessionsDto>, NotFound>> RevokeSessions(string userId, CurrentUser admin, IAccountStore store, SecurityLog audit, TimeProvider time,
        HttpContext context, CancellationToken cancellationToken)
    {
        if (await store.GetUserAsync(userId, cancellationToken) is null) return TypedResults.NotFound();
        var revoked = await store.RevokeUserSessionsAsync(userId, time.GetUtcNow(), cancellationToken);
        await audit.RecordByAsync(admin.Id, userId, SecurityEventKinds.SessionsRevoked, context.Connection.RemoteIpAddress?.ToString(), $"{revoked.Count} session(s)", cancellationToken);
        return TypedResults.Ok(new RevokedSessionsDto(revoked.Count));
    }

    /// <summary><c>status</c> queued (longest waiting first), running or waiting (for a tool approval); <c>stuck=true</c>: running past their lease (a node that stopped renewing).</summary>
    private static async Task<Results<Ok<Page<AdminRunDto>>, ValidationProblem>> ListRuns(string? status, bool? stuck, int? limit, IRunStore runs, TimeProvider time,
        CancellationToken cancellationToken)
    {
        var wanted = status ?? (stuck == true ? RunStatus.Running : RunStatus.Queued);
        if (wanted is not (RunStatus.Queued or RunStatus.Running or RunStatus.Waiting) || (stuck == true && wanted != RunStatus.Running))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["status"] = ["status must be queued, running or waiting (stuck runs are running)."] });
        if (Paging.Check(limit) is { } problem) return problem;
        var found = await runs.ListRunsByStatusAsync(wanted, stuck == true ? time.GetUtcNow() : null, Paging.Take(limit), cancellationToken);
        return TypedResults.Ok(new Page<AdminRunDto>([.. found.Select(r => new AdminRunDto(r.Id, r.UserId, r.ThreadId, r.Status, r.CreatedAt, r.StartedAt, r.NodeId))], null));
    }

    private static async Task<Results<Ok<RunDto>, NotFound, ProblemHttpResult>> CancelRun(string runId, CurrentUser admin, IRunStore runs, RunCoordinator coordinator,
        SecurityLog audit, HttpContext context, CancellationToken cancellationToken)
    {
        if (await runs.FindRunAsync(runId, cancellationToken) is not { } run) return TypedResults.NotFound();
        // The owner's own cancel path, so the owner's devices see the run end as for any cancellation.
        var result = await coordinator.CancelAsync(run.UserId, run.Id, CancelReasons.Admin, cancellationToken);
        if (result is CancelResult.AlreadyFinished finished)
            return TypedResults.Problem(statusCode: StatusCodes.Status409Conflict, title: "run_finished", detail: $"The run already ended as {finished.Run.Status}.");
        await audit.RecordByAsync(admin.Id, run.UserId, SecurityEventKinds.RunCancelled, context.Connection.RemoteIpAddress?.ToString(), run.Id, cancellationToken);
        return TypedResults.Ok(((await runs.FindRunAsync(runId, cancellationToken)) ?? run).ToDto());
    }

    private static async Task<Results<Ok<Page<UserUsageDto>>, ValidationProblem>> Usage(int? days, int? limit, IUsageStore usage, TimeProvider time, CancellationToken cancellationToken)
    {
        if (days is < 1 or > 366) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["days"] = ["days must be between 1 and 366."] });
        if (Paging.Check(limit) is { } problem) return problem;
        var totals = await usage.TotalsByUserAsync(time.GetUtcNow().AddDays(-(days ?? 30)), Paging.Take(limit), cancellationToken);
        return TypedResults.Ok(new Page<UserUsageDto>([.. totals.Select(t => new UserUsageDto(t.UserId, t.Email, t.Calls, t.Tokens, Math.Round(t.Cost, 6)))], null));
    }

    private static async Task<Results<Ok<Page<AuditEntryDto>>, ValidationProblem>> Audit(string? user_id, string? kind, int? limit, string? cursor, IAccountStore store,
        CancellationToken cancellationToken)
    {
        if (Paging.Check(limit) is { } problem) return problem;
        var take = Paging.Take(limit);
        return TypedResults.Ok(Paging.Page(await store.ListAuditAsync(user_id, kind, take + 1, cursor, cancellationToken), take, e => e.Id,
            e => new AuditEntryDto(e.Id, e.UserId, e.Kind, e.At, e.Address, e.Detail, e.ActorId)));
    }

    private static AdminUserDto ToDto(UserRecord u) =>
        new(u.Id, u.Email, u.DisplayName, u.Tier, u.Role, u.CreatedAt, u.LockoutUntil, u.FailedLogins, u.TokenBudget, u.CostBudget);
}
