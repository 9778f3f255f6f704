using System.CommandLine;
using Apex.Client;
using Spectre.Console;

namespace Apex.Cli;

/// <summary><c>apex threads</c>, <c>apex runs</c> and <c>apex usage</c>.</summary>
internal static class ListCommands
{
    public static Command Threads(GlobalOptions options)
    {
        var limit = new Option<int>("--limit") { Description = "How many threads, newest first (1–200)", DefaultValueFactory = _ => 20 };
        var command = new Command("threads", "List your threads, newest first") { limit };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            var page = await session.Client.ListThreadsAsync(parse.GetValue(limit), cancellationToken: ct);
            if (output.Json)
            {
                output.WriteJson(page, ApexJsonContext.Default.PageThreadDto);
                return ExitCodes.Ok;
            }
            if (page.Items.Count == 0)
            {
                output.Note("No threads yet: `apex ask \"…\"` starts one.");
                return ExitCodes.Ok;
            }
            var table = new Table().AddColumns("id", "title", "last seq", "updated");
            foreach (var t in page.Items) table.AddRow(Markup.Escape(t.Id), Markup.Escape(t.Title), t.LastSeq.ToString(System.Globalization.CultureInfo.InvariantCulture), Output.When(t.UpdatedAt));
            output.Out.Write(table);
            if (page.NextCursor is not null) output.Note($"More threads exist: --limit {Math.Min(200, page.Items.Count * 2)}");
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command Runs(GlobalOptions options)
    {
        var thread = new Argument<string>("thread") { Description = "The thread" };
        var command = new Command("runs", "List a thread's runs, oldest first, with their status") { thread };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            var threadId = parse.GetValue(thread)!;
            var runs = await AllAsync(RunCommands.AllRunsAsync(session.Client, threadId, ct)).OrNotFound(RunCommands.NoThread(threadId));
            if (output.Json)
            {
                output.WriteJson(new Page<RunDto>(runs, null), ApexJsonContext.Default.PageRunDto);
                return ExitCodes.Ok;
            }
            var table = new Table().AddColumns("id", "status", "created", "took", "error");
            foreach (var r in runs)
            {
                var took = r.StartedAt is { } start && r.EndedAt is { } end ? Output.Ms((end - start).TotalMilliseconds) : "";
                table.AddRow(Markup.Escape(r.Id), Status(r.Status), Output.When(r.CreatedAt), took, Markup.Escape(r.Error ?? ""));
            }
            output.Out.Write(table);
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command Usage(GlobalOptions options)
    {
        var days = new Option<int>("--days") { Description = "Over the last N days, today included (1–366)", DefaultValueFactory = _ => 30 };
        var command = new Command("usage", "Your plan tier, the model tokens and cost of your runs, and your tool calls") { days };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            var usage = await session.Client.GetUsageAsync(parse.GetValue(days), ct);
            if (output.Json)
            {
                output.WriteJson(usage, ApexJsonContext.Default.UsageDto);
                return ExitCodes.Ok;
            }
            output.Line($"Plan [bold]{Markup.Escape(usage.Tier)}[/] · last {usage.Days} day(s): {Output.Count(usage.InputTokens)} tokens in, {Output.Count(usage.OutputTokens)} out, {Output.Usd(usage.CostUsd)}");
            if (usage.ByModel.Count > 0)
            {
                var models = new Table().AddColumns("model", "calls", "tokens in", "tokens out", "cached in", "cost");
                foreach (var m in usage.ByModel)
                    models.AddRow(Markup.Escape(m.Model), Output.Count(m.Calls), Output.Count(m.InputTokens), Output.Count(m.OutputTokens), Output.Count(m.CachedInputTokens), Output.Usd(m.CostUsd));
                output.Out.Write(models);
            }
            var tools = usage.ToolCalls.GroupBy(t => t.Tool, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).ToList();
            if (tools.Count > 0)
            {
                var table = new Table().AddColumns("tool", "calls", "not ok");
                foreach (var g in tools) table.AddRow(Markup.Escape(g.Key), Output.Count(g.Sum(t => t.Calls)), Output.Count(g.Sum(t => t.Failed)));
                output.Out.Write(table);
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static async Task<List<RunDto>> AllAsync(IAsyncEnumerable<RunDto> runs)
    {
        var list = new List<RunDto>();
        await foreach (var run in runs) list.Add(run);
        return list;
    }

    private static string Status(string status) => status switch
    {
        "completed" => "[green]completed[/]",
        "failed" => "[red]failed[/]",
        "cancelled" => "[yellow]cancelled[/]",
        _ => Markup.Escape(status),
    };
}
