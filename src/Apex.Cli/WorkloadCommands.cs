using System.CommandLine;
using Apex.Client;
using Spectre.Console;

namespace Apex.Cli;

/// <summary><c>apex upload</c> and <c>apex sample</c>: the user's workload data and the server's validation report.</summary>
internal static class WorkloadCommands
{
    private const int ErrorsShown = 20;

    public static Command Upload(GlobalOptions options)
    {
        var file = new Argument<FileInfo>("file") { Description = "A CSV file with a header row, or JSON Lines (.jsonl)" };
        var strict = new Option<bool>("--strict") { Description = "Refuse the whole file if any row is bad (nothing is imported) and exit non-zero" };
        var replace = new Option<bool>("--replace") { Description = "Replace the workload data stored before" };
        var command = new Command("upload", "Upload LLM usage data (one model call per row) and show the validation report") { file, strict, replace };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var path = parse.GetValue(file)!;
            if (!path.Exists) throw new CliException($"{path.FullName} does not exist.");
            var session = await options.SessionAsync(parse, ct);
            await using var stream = path.OpenRead();
            var contentType = path.Extension.ToLowerInvariant() switch
            {
                ".csv" => "text/csv",
                ".jsonl" or ".ndjson" => "application/jsonl",
                _ => "application/octet-stream", // the server tells CSV from JSON Lines by the first character
            };
            var isStrict = parse.GetValue(strict);
            WorkloadUploadResult result;
            if (output.Interactive)
            {
                result = await output.Out.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn())
                    .StartAsync(async progress =>
                    {
                        var task = progress.AddTask($"Uploading {Markup.Escape(path.Name)}", maxValue: Math.Max(1, path.Length));
                        var sent = new Progress<long>(bytes =>
                        {
                            task.Value = bytes;
                            // Every byte is out; what remains is the server reading and checking the rows.
                            if (bytes >= path.Length) task.Description = $"Validating {Markup.Escape(path.Name)} on the server";
                        });
                        var answer = await session.Client.UploadWorkloadAsync(stream, contentType, isStrict, parse.GetValue(replace), sent, ct);
                        task.Value = task.MaxValue;
                        return answer;
                    });
            }
            else result = await session.Client.UploadWorkloadAsync(stream, contentType, isStrict, parse.GetValue(replace), null, ct);

            switch (result)
            {
                case WorkloadUploadResult.Imported imported:
                    if (output.Json) output.WriteJson(imported.Report, ApexJsonContext.Default.WorkloadReport);
                    else ShowReport(output, imported.Report, stored: true);
                    return isStrict && imported.Report.RowsRejected > 0 ? ExitCodes.Error : ExitCodes.Ok;
                case WorkloadUploadResult.Refused refused:
                    if (output.Json) output.WriteJson(refused.Problem, ApexJsonContext.Default.WorkloadProblem);
                    else if (refused.Problem.Report is { } report) ShowReport(output, report, stored: false);
                    output.Error($"Refused ({refused.Problem.Status} {refused.Problem.Title}): {refused.Problem.Detail}");
                    return ExitCodes.Error;
                default:
                    throw new InvalidOperationException("WorkloadUploadResult is a closed type.");
            }
        });
        return command;
    }

    public static Command Sample(GlobalOptions options)
    {
        var days = new Option<int>("--days") { Description = "Days of data, ending now (1–90)", DefaultValueFactory = _ => 14 };
        var perDay = new Option<int>("--calls-per-day") { Description = "Model calls per day (1–5000)", DefaultValueFactory = _ => 300 };
        var command = new Command("sample", "Replace your workload data with a generated, realistic sample (to try Apex without your own)") { days, perDay };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            var report = await session.Client.GenerateSampleWorkloadAsync(new SampleWorkloadRequest(parse.GetValue(days), parse.GetValue(perDay)), ct);
            if (output.Json) output.WriteJson(report, ApexJsonContext.Default.WorkloadReport);
            else ShowReport(output, report, stored: true);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void ShowReport(Output output, WorkloadReport report, bool stored)
    {
        var verdict = stored ? $"[green]{Output.Count(report.RowsAccepted)} row(s) stored[/]" : "[red]nothing imported[/]";
        var rejected = report.RowsRejected > 0 ? $"[red]{Output.Count(report.RowsRejected)} rejected[/]" : "0 rejected";
        output.Line($"{verdict}, {rejected} ({Markup.Escape(report.Format)}, batch {Markup.Escape(report.BatchId)})");
        if (report.RowsPricedFromTable > 0) output.Line($"{Output.Count(report.RowsPricedFromTable)} row(s) priced from the server's price table (no cost column)");
        if (report.UnpricedModels.Count > 0) output.Line($"[yellow]No price for: {Markup.Escape(string.Join(", ", report.UnpricedModels))}[/]");
        if (report.Errors.Count == 0) return;
        var table = new Table().AddColumns("line", "reason");
        foreach (var e in report.Errors.Take(ErrorsShown)) table.AddRow(e.Line.ToString(System.Globalization.CultureInfo.InvariantCulture), Markup.Escape(e.Reason));
        output.Out.Write(table);
        if (report.RowsRejected > ErrorsShown) output.Note($"… and {report.RowsRejected - ErrorsShown} more (--json shows the first {report.Errors.Count}).");
    }
}
