using Apex.Server.Agents;
using Apex.Server.Execution;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Api;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Apex.Server.Workloads;

internal static class WorkloadEndpoints
{
    private const int ReportedErrors = 100;

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

    /// <summary>CSV or JSONL, one model call per row. <c>?strict=true</c> refuses the whole file if any row is bad; <c>?replace=true</c> replaces earlier data.</summary>
    private static async Task<Results<Ok<WorkloadReport>, ProblemHttpResult>> Upload(HttpRequest request, bool? strict, bool? replace, CurrentUser user,
        IWorkloadStore store, IdGenerator ids, IOptions<WorkloadOptions> options, CancellationToken cancellationToken)
    {
        var limit = options.Value.MaxUploadBytes;
        if (request.ContentLength > limit) return TooLarge(limit);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            buffer.Write(chunk, 0, read);
            if (buffer.Length > limit) return TooLarge(limit);
        }
        var content = buffer.ToArray();
        var format = WorkloadParser.DetectFormat(request.ContentType, content);
        return await ImportAsync(content, format, strict ?? false, replace ?? false, user, store, ids, options.Value, cancellationToken);
    }

    private static async Task<Results<Ok<WorkloadReport>, ProblemHttpResult>> Sample(SampleWorkloadRequest? request, CurrentUser user, IWorkloadStore store,
        IdGenerator ids, TimeProvider time, IOptions<WorkloadOptions> options, CancellationToken cancellationToken)
    {
        var days = request?.Days ?? 14;
        var perDay = request?.CallsPerDay ?? 300;
        if (days is < 1 or > 90 || perDay is < 1 or > 5000 || (long)days * perDay > options.Value.MaxRows)
            return TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "Invalid sample size",
                detail: $"days must be 1–90 and calls_per_day 1–5000, at most {options.Value.MaxRows} rows in all.");
        var csv = SampleWorkload.Csv(time.GetUtcNow(), days, perDay, request?.Seed ?? 1);
        return await ImportAsync(System.Text.Encoding.UTF8.GetBytes(csv), "csv", false, true, user, store, ids, options.Value, cancellationToken);
    }

    private static async Task<Ok<WorkloadSummaryDto>> Summary(CurrentUser user, IWorkloadStore store, CancellationToken cancellationToken)
    {
        var s = await store.GetWorkloadSummaryAsync(user.Id, WorkloadFilter.None, cancellationToken);
        return TypedResults.Ok(new WorkloadSummaryDto(s.Calls, s.Errors, s.PromptTokens, s.CompletionTokens, Math.Round(s.Cost, 2), s.First, s.Last, s.Models));
    }

    private static async Task<NoContent> Delete(CurrentUser user, IWorkloadStore store, CancellationToken cancellationToken)
    {
        await store.DeleteWorkloadAsync(user.Id, cancellationToken);
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

    private static async Task<Results<Ok<WorkloadReport>, ProblemHttpResult>> ImportAsync(byte[] content, string format, bool strict, bool replace,
        CurrentUser user, IWorkloadStore store, IdGenerator ids, WorkloadOptions options, CancellationToken cancellationToken)
    {
        var parsed = WorkloadParser.Parse(content, format, options.MaxRows);
        var batchId = ids.NewId();
        var errors = parsed.Errors.Take(ReportedErrors).Select(e => new RowErrorDto(e.Line, e.Reason)).ToList();
        if (parsed.FileError is not null)
            return Rejected(StatusCodes.Status400BadRequest, "Invalid workload file", parsed.FileError, new WorkloadReport(batchId, format, 0, parsed.Errors.Count, errors, 0, []));

        var calls = new List<WorkloadCall>(parsed.Rows.Count);
        var priced = 0;
        var unpriced = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var row in parsed.Rows)
        {
            var cost = row.Cost;
            if (cost is null)
            {
                cost = options.CostOf(row.Model, row.PromptTokens, row.CompletionTokens);
                if (cost is null) unpriced.Add(row.Model);
                else priced++;
            }
            calls.Add(new WorkloadCall(ids.NewId(), user.Id, batchId, row.Timestamp, row.Provider, row.Model, row.PromptTokens, row.CompletionTokens,
                row.LatencyMs, row.Status, cost, row.PromptHash, row.Feature, row.Team));
        }
        var report = new WorkloadReport(batchId, format, calls.Count, parsed.Errors.Count, errors, priced, [.. unpriced]);
        if (calls.Count == 0)
            return Rejected(StatusCodes.Status422UnprocessableEntity, "No valid rows", "Every row of the file was rejected; nothing was imported.", report with { RowsAccepted = 0 });
        if (strict && parsed.Errors.Count > 0)
            return Rejected(StatusCodes.Status422UnprocessableEntity, "Rows rejected", $"{parsed.Errors.Count} row(s) are invalid and strict=true; nothing was imported.", report with { RowsAccepted = 0 });

        await store.InsertWorkloadCallsAsync(user.Id, calls, replace, cancellationToken);
        return TypedResults.Ok(report);
    }

    private static ProblemHttpResult TooLarge(long limit) =>
        TypedResults.Problem(statusCode: StatusCodes.Status413PayloadTooLarge, title: "File too large", detail: $"Uploads are limited to {limit} bytes; nothing was imported.");

    private static ProblemHttpResult Rejected(int status, string title, string detail, WorkloadReport report) =>
        TypedResults.Problem(statusCode: status, title: title, detail: detail, extensions: new Dictionary<string, object?> { ["report"] = report });
}
