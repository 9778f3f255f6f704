using System.IO.Pipelines;
using Apex.Client;
using Apex.Server.Agents;
using Apex.Server.Execution;
using Apex.Server.Auth;
using Apex.Server.Api;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Apex.Server.Workloads;

internal static class WorkloadEndpoints
{
    public static RouteGroupBuilder MapWorkloadEndpoints(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api").RequireAuthorization().WithTags("Workloads");
        group.MapPost("/workloads", Upload).Accepts<string>("text/csv", "application/jsonl", "application/x-ndjson");
        group.MapPost("/workloads/sample", Sample);
        group.MapGet("/workloads", Summary);
        group.MapDelete("/workloads", Delete);
        group.MapGet("/usage/tools", ToolUsage);
        group.MapGet("/usage", Usage);
        return group;
    }

    /// <summary>
    /// CSV or JSONL, one model call per row, read as a stream. <c>?strict=true</c> refuses the whole file if any row is bad;
    /// <c>?replace=true</c> replaces earlier data. One upload at a time per user.
    /// </summary>
    private static async Task<Results<Ok<WorkloadReport>, ProblemHttpResult>> Upload(HttpRequest request, bool? strict, bool? replace, CurrentUser user,
        WorkloadImporter importer, SecurityLog audit, IOptions<WorkloadOptions> options, CancellationToken cancellationToken)
    {
        var limit = options.Value.MaxUploadBytes;
        if (request.ContentLength > limit)
            return TypedResults.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "File too large", type: "upload_too_large",
                detail: $"Uploads are limited to {limit} bytes; nothing was imported.");
        // The importer counts the bytes against the limit and answers 413 itself; Kestrel's own limit (30 MB by default) is set
        // just above it, so that a configured limit above Kestrel's is honoured and the importer's answer comes first.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } size) size.MaxRequestBodySize = limit + 2L * BodyLines.MaxLineBytes;
        var outcome = await importer.ImportAsync(user.Id, request.BodyReader, request.ContentType, strict ?? false, replace ?? false, cancellationToken);
        await AuditAsync(audit, user, outcome, request.HttpContext, replace == true ? "replace" : "append", cancellationToken);
        return Answer(outcome);
    }

    /// <summary>Stored data is part of the audit trail: who uploaded how many rows, from where.</summary>
    private static async Task AuditAsync(SecurityLog audit, CurrentUser user, ImportOutcome outcome, HttpContext context, string mode, CancellationToken cancellationToken)
    {
        if (outcome is ImportOutcome.Imported imported)
            await audit.RecordAsync(user.Id, SecurityEventKinds.WorkloadUploaded, context.Connection.RemoteIpAddress?.ToString(),
                $"{imported.Report.RowsAccepted} rows ({mode}), batch {imported.Report.BatchId}", cancellationToken);
    }

    private static async Task<Results<Ok<WorkloadReport>, ProblemHttpResult>> Sample(SampleWorkloadRequest? request, CurrentUser user, WorkloadImporter importer,
        SecurityLog audit, HttpContext context, TimeProvider time, IOptions<WorkloadOptions> options, CancellationToken cancellationToken)
    {
        var days = request?.Days ?? 14;
        var perDay = request?.CallsPerDay ?? 300;
        if (days is < 1 or > 90 || perDay is < 1 or > 5000 || (long)days * perDay > options.Value.MaxRows)
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid sample size",
                detail: $"days must be 1–90 and calls_per_day 1–5000, at most {options.Value.MaxRows} rows in all.");
        var csv = System.Text.Encoding.UTF8.GetBytes(SampleWorkload.Csv(time.GetUtcNow(), days, perDay, request?.Seed ?? 1));
        var reader = PipeReader.Create(new MemoryStream(csv));
        try
        {
            var outcome = await importer.ImportAsync(user.Id, reader, "text/csv", false, true, cancellationToken);
            await AuditAsync(audit, user, outcome, context, "sample", cancellationToken);
            return Answer(outcome);
        }
        finally
        {
            await reader.CompleteAsync();
        }
    }

    private static async Task<Ok<WorkloadSummaryDto>> Summary(CurrentUser user, IWorkloadStore store, CancellationToken cancellationToken)
    {
        var s = await store.GetWorkloadSummaryAsync(user.Id, WorkloadFilter.None, cancellationToken);
        return TypedResults.Ok(new WorkloadSummaryDto(s.Calls, s.Errors, s.PromptTokens, s.CompletionTokens, Math.Round(s.Cost, 2), s.First, s.Last, s.Models));
    }

    private static async Task<NoContent> Delete(CurrentUser user, IWorkloadStore store, SecurityLog audit, HttpContext context, IOptions<WorkloadOptions> options,
        CancellationToken cancellationToken)
    {
        await store.DeleteWorkloadAsync(user.Id, options.Value.UploadChunkRows, cancellationToken);
        await audit.RecordAsync(user.Id, SecurityEventKinds.WorkloadDeleted, context.Connection.RemoteIpAddress?.ToString(), null, cancellationToken);
        return TypedResults.NoContent();
    }

    private static async Task<Results<Ok<Page<ToolUsageDto>>, ValidationProblem>> ToolUsage(int? limit, string? cursor, CurrentUser user, IUsageStore store,
        CancellationToken cancellationToken)
    {
        if (Paging.Check(limit) is { } problem) return problem;
        var take = Paging.Take(limit);
        var rows = await store.ListToolUsageAsync(user.Id, take + 1, cursor, cancellationToken);
        return TypedResults.Ok(Paging.Page(rows, take, r => r.Id, r => new ToolUsageDto(r.Id, r.RunId, r.Tool, r.Status, r.DurationMs, r.CreatedAt)));
    }

    /// <summary>The user's model tokens and cost by day and model, and tool calls by day, over the last <c>days</c> (1–366, default 30).</summary>
    private static async Task<Results<Ok<UsageDto>, ValidationProblem>> Usage(int? days, CurrentUser user, IUsageStore store, IAccountStore accounts, BudgetLedger budgets,
        TimeProvider time, CancellationToken cancellationToken)
    {
        var span = days ?? 30;
        if (span is < 1 or > 366) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["days"] = ["days must be between 1 and 366."] });
        var now = time.GetUtcNow();
        var from = new DateTimeOffset(now.UtcDateTime.Date, TimeSpan.Zero).AddDays(1 - span);
        var models = await store.ModelUsageByDayAsync(user.Id, from, cancellationToken);
        var tools = await store.ToolUsageByDayAsync(user.Id, from, cancellationToken);
        static double? Sum(IEnumerable<double?> costs) => costs.All(c => c is null) ? null : Math.Round(costs.Sum(c => c ?? 0), 6);
        var byModel = models.GroupBy(m => m.Model).Select(g => new ModelUsageFigure(g.Key, g.Sum(m => m.Calls), g.Sum(m => m.InputTokens), g.Sum(m => m.OutputTokens),
            g.Sum(m => m.CachedTokens), g.Sum(m => m.ReasoningTokens), Sum(g.Select(m => m.Cost)))).OrderBy(m => m.Model, StringComparer.Ordinal).ToList();
        BudgetDto? budget = null;
        if (await accounts.GetUserAsync(user.Id, cancellationToken) is { } account)
        {
            var standing = await budgets.StandingAsync(account, now, cancellationToken);
            var used = standing.MonthlyTokens is null && standing.MonthlyCostUsd is null ? await store.TotalSinceAsync(user.Id, BudgetStanding.MonthStart(now), cancellationToken)
                : new UsageTotal(standing.TokensUsed, standing.CostUsed);
            budget = new BudgetDto(standing.MonthlyTokens, standing.MonthlyCostUsd, used.Tokens, Math.Round(used.Cost, 6), standing.TokensLeft,
                standing.CostLeft is { } left ? Math.Round(left, 6) : null, standing.ResetsAt);
        }
        return TypedResults.Ok(new UsageDto(user.Tier, span, models.Sum(m => m.InputTokens), models.Sum(m => m.OutputTokens), Sum(models.Select(m => m.Cost)),
            [.. models.Select(m => new DailyModelUsageDto(m.Day, m.Model, m.Calls, m.InputTokens, m.OutputTokens, m.CachedTokens, m.ReasoningTokens, m.Cost))],
            byModel, [.. tools.Select(t => new DailyToolUsageDto(t.Day, t.Tool, t.Calls, t.Failed))], budget));
    }

    private static Results<Ok<WorkloadReport>, ProblemHttpResult> Answer(ImportOutcome outcome) => outcome switch
    {
        ImportOutcome.Imported imported => TypedResults.Ok(imported.Report),
        ImportOutcome.Refused r => TypedResults.Problem(statusCode: r.Status, title: r.Title, detail: r.Detail, type: r.Code,
            extensions: r.Report is null ? null : new Dictionary<string, object?> { ["report"] = r.Report }),
        _ => throw new InvalidOperationException("An import is imported or refused."),
    };
}
