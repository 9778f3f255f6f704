using System.IO.Pipelines;
using Apex.Client;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Workloads;

/// <summary>What became of an upload.</summary>
internal abstract record ImportOutcome
{
    private ImportOutcome() { }

    public sealed record Imported(WorkloadReport Report) : ImportOutcome;

    /// <summary>Nothing of the upload is stored. <paramref name="Code"/> is the ProblemDetails <c>type</c>.</summary>
    public sealed record Refused(int Status, string Code, string Title, string Detail, WorkloadReport? Report = null) : ImportOutcome;
}

/// <summary>
/// Imports an upload as a stream: a line is parsed, its row joins a chunk, and a full chunk is written in a write
/// transaction of its own, so that memory holds one chunk and other users' writes pass between chunks on SQLite's
/// single writer. The rows stay invisible until one small final commit; a refused, failed or abandoned upload's rows are
/// deleted, so an upload is still all-or-nothing. One upload at a time per user; at most <see cref="WorkloadOptions.MaxRowsPerUser"/>
/// rows stored per user.
/// </summary>
internal sealed partial class WorkloadImporter(IWorkloadStore store, IdGenerator ids, TimeProvider time, IOptions<WorkloadOptions> options,
    ILogger<WorkloadImporter> logger)
{
    private const int ReportedErrors = 100;
    private const int ReportedUnpriced = 100;

    public async Task<ImportOutcome> ImportAsync(string userId, PipeReader body, string? contentType, bool strict, bool replace, CancellationToken cancellationToken)
    {
        var settings = options.Value;
        var batchId = ids.NewId();
        var lease = TimeSpan.FromSeconds(settings.UploadLeaseSeconds);
        // Rows an earlier upload of this user left behind (a node that died, a purge cut short) go first.
        await store.PurgeWorkloadAsync(userId, settings.UploadChunkRows, cancellationToken);
        if (await store.BeginUploadAsync(userId, batchId, time.GetUtcNow(), time.GetUtcNow() + lease, cancellationToken) is not UploadStart.Started started)
            return new ImportOutcome.Refused(StatusCodes.Status409Conflict, "upload_in_progress", "Upload in progress",
                "Another upload of yours is being imported; send this one when it has finished. Nothing was imported.");

        var committed = false;
        try
        {
            var outcome = await StageAsync(userId, batchId, body, contentType, strict, replace, started.StoredRows, settings, cancellationToken);
            committed = outcome is ImportOutcome.Imported;
            if (committed) LogImported(logger, userId, batchId, ((ImportOutcome.Imported)outcome).Report.RowsAccepted);
            return outcome;
        }
        finally
        {
            // Also when the client went away mid-body (the request's token is cancelled): the staged rows must not stay.
            if (!committed)
            {
                await store.AbortUploadAsync(userId, batchId, CancellationToken.None);
                LogAborted(logger, userId, batchId);
            }
            await store.PurgeWorkloadAsync(userId, settings.UploadChunkRows, CancellationToken.None);
        }
    }

    private async Task<ImportOutcome> StageAsync(string userId, string batchId, PipeReader body, string? contentType, bool strict, bool replace, long storedRows,
        WorkloadOptions settings, CancellationToken cancellationToken)
    {
        var lines = new BodyLines(body, settings.MaxUploadBytes);
        var parser = new WorkloadParser(contentType, settings.MaxRows);
        var chunk = new List<WorkloadCall>(settings.UploadChunkRows);
        var errors = new List<RowErrorDto>();
        var unpriced = new SortedSet<string>(StringComparer.Ordinal);
        int accepted = 0, rejected = 0, priced = 0;
        // With replace, the rows stored now are hidden at commit: only this upload counts against the limit.
        var room = settings.MaxRowsPerUser - (replace ? 0 : storedRows);
        WorkloadReport Report(int rows) => new(batchId, parser.Format, rows, rejected, [.. errors], priced, [.. unpriced]);
        ImportOutcome.Refused Refuse(int status, string code, string title, string detail, bool withReport = true) =>
            new(status, code, title, detail, withReport ? Report(0) : null);

        while (true)
        {
            var read = await lines.ReadAsync(cancellationToken);
            if (read is BodyLine.End) break;
            if (read is BodyLine.TooLarge tooLarge)
                return Refuse(StatusCodes.Status413PayloadTooLarge, "upload_too_large", "File too large", $"Uploads are limited to {tooLarge.Limit} bytes; nothing was imported.", false);
            if (read is BodyLine.Unreadable unreadable) return Refuse(StatusCodes.Status400BadRequest, "invalid_file", "Invalid workload file", unreadable.Reason);
            var line = (BodyLine.Text)read;
            switch (parser.Parse(line.Number, line.Value))
            {
                case LineOutcome.FileError file:
                    return Refuse(StatusCodes.Status400BadRequest, "invalid_file", "Invalid workload file", file.Reason);
                case LineOutcome.Bad bad:
                    Reject(bad.Error.Line, bad.Error.Reason);
                    break;
                case LineOutcome.Row { Value: var row }:
                    var cost = row.Cost;
                    if (cost is null)
                    {
                        cost = settings.CostOf(row.Model, row.PromptTokens, row.CompletionTokens);
                        if (cost is null && unpriced.Count < ReportedUnpriced) unpriced.Add(row.Model);
                        if (cost > WorkloadBounds.MaxCostUsd)
                        {
                            Reject(row.Line, $"the cost priced from the table, {cost:0}, is above the limit of {WorkloadBounds.MaxCostUsd:0}.");
                            break;
                        }
                        if (cost is not null) priced++;
                    }
                    accepted++;
                    if (accepted > room)
                        return Refuse(StatusCodes.Status409Conflict, "workload_row_limit", "Too many stored rows",
                            $"You may store at most {settings.MaxRowsPerUser} rows; {storedRows} are stored{(replace ? " (replaced by this upload)" : "")} and this upload has more than {room}. Nothing was imported.");
                    // In strict mode a bad row refuses the whole file: once there is one, nothing more is written, but the rest is still checked for the report.
                    if (strict && rejected > 0) break;
                    chunk.Add(new WorkloadCall(ids.NewId(), userId, batchId, row.Timestamp, row.Provider, row.Model, row.PromptTokens, row.CompletionTokens,
                        row.LatencyMs, row.Status, cost, row.PromptHash, row.Feature, row.Team));
                    if (chunk.Count == settings.UploadChunkRows && !await FlushAsync()) return Lost();
                    break;
            }
        }

        if (parser.Finish() is { } fileError) return Refuse(StatusCodes.Status400BadRequest, "invalid_file", "Invalid workload file", fileError);
        if (accepted == 0)
            return Refuse(StatusCodes.Status422UnprocessableEntity, "no_valid_rows", "No valid rows", "Every row of the file was rejected; nothing was imported.");
        if (strict && rejected > 0)
            return Refuse(StatusCodes.Status422UnprocessableEntity, "rows_rejected", "Rows rejected", $"{rejected} row(s) are invalid and strict=true; nothing was imported.");
        if (chunk.Count > 0 && !await FlushAsync()) return Lost();

        return await store.CommitUploadAsync(userId, batchId, replace, settings.MaxRowsPerUser, cancellationToken) switch
        {
            UploadCommit.Committed => new ImportOutcome.Imported(Report(accepted)),
            UploadCommit.OverRowLimit over => Refuse(StatusCodes.Status409Conflict, "workload_row_limit", "Too many stored rows",
                $"You may store at most {over.Limit} rows; {over.StoredRows} are stored and this upload has {accepted}. Nothing was imported."),
            _ => Lost(),
        };

        void Reject(int line, string reason)
        {
            rejected++;
            if (errors.Count < ReportedErrors) errors.Add(new RowErrorDto(line, reason));
        }

        async Task<bool> FlushAsync()
        {
            var written = await store.StageWorkloadCallsAsync(userId, batchId, chunk, time.GetUtcNow() + TimeSpan.FromSeconds(settings.UploadLeaseSeconds), cancellationToken);
            chunk.Clear();
            return written;
        }

        ImportOutcome.Refused Lost() => Refuse(StatusCodes.Status409Conflict, "upload_expired", "Upload expired",
            $"The upload sent no rows for {settings.UploadLeaseSeconds} s and another upload took its place; nothing of it was imported.");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Workload upload {BatchId} of user {UserId} imported: {Rows} rows")]
    private static partial void LogImported(ILogger logger, string userId, string batchId, int rows);

    [LoggerMessage(Level = LogLevel.Information, Message = "Workload upload {BatchId} of user {UserId} not imported; its rows were removed")]
    private static partial void LogAborted(ILogger logger, string userId, string batchId);
}
