using System.CommandLine;
using Apex.Client;
using Spectre.Console;

namespace Apex.Cli;

/// <summary><c>apex ask</c>, <c>apex chat</c> and <c>apex resume</c>: runs of the agent team, followed live over SSE.</summary>
internal static class RunCommands
{
    private const int TitleChars = 60;

    public static Command Ask(GlobalOptions options)
    {
        var question = new Argument<string>("question") { Description = "What to ask the agent team" };
        var thread = new Option<string?>("--thread") { Description = "Ask in this thread (default: a new thread)" };
        var strategy = new Option<string?>("--strategy") { Description = "When the thread is busy: enqueue (default), reject or interrupt" };
        strategy.AcceptOnlyFromAmong(QueueStrategies.Enqueue, QueueStrategies.Reject, QueueStrategies.Interrupt);
        var agent = new Option<string?>("--agent") { Description = "The agent or team that answers (its id or name; default: the shipped team)" };
        var command = new Command("ask", "Ask one question: shows the team's steps live, then the answer; a tool call that needs approval is asked on stdin. " +
            "Exit 0 only when the run completed, 5 when it was left waiting for an approval; Ctrl+C cancels the run")
        {
            question, thread, strategy, agent,
        };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            using var interrupt = new Interrupt();
            using var armed = interrupt.Arm();
            var text = parse.GetValue(question)!;
            var target = parse.GetValue(thread) is { } id
                ? await session.Client.GetThreadAsync(id, ct).OrNotFound(NoThread(id))
                : await session.Client.CreateThreadAsync(Title(text), cancellationToken: ct);
            return await TurnAsync(session, output, new EventPrinter(output), target.Id, target.LastSeq, text, parse.GetValue(strategy), armed.Token, ct, parse.GetValue(agent));
        });
        return command;
    }

    public static Command Chat(GlobalOptions options)
    {
        var thread = new Option<string?>("--thread") { Description = "Continue this thread (default: a new one)" };
        var command = new Command("chat", "Talk with the agent team, one thread across turns; /quit (or end of input) leaves, Ctrl+C cancels the running turn") { thread };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            var printer = new EventPrinter(output);
            using var interrupt = new Interrupt();
            var target = parse.GetValue(thread) is { } id ? await session.Client.GetThreadAsync(id, ct).OrNotFound(NoThread(id)) : null;
            var afterSeq = target?.LastSeq ?? 0;
            if (!output.Json) output.Note(target is null ? "A new thread starts with your first message. /quit leaves." : $"Thread {target.Id}: {target.Title}. /quit leaves.");
            var last = ExitCodes.Ok;
            while (true)
            {
                if (!output.Json && !Console.IsInputRedirected) output.Out.Markup("[bold]you>[/] ");
                var line = Console.In.ReadLine();
                if (line is null || line.Trim() is "/quit" or "/exit") return last;
                if (line.Trim().Length == 0) continue;
                await session.EnsureFreshAsync(ct);
                target ??= await session.Client.CreateThreadAsync(Title(line), cancellationToken: ct);
                using var armed = interrupt.Arm();
                last = await TurnAsync(session, output, printer, target.Id, afterSeq, line, null, armed.Token, ct);
                afterSeq = session.Config.LastSeenSeq(target.Id) ?? afterSeq;
            }
        });
        return command;
    }

    public static Command Resume(GlobalOptions options)
    {
        var thread = new Argument<string>("thread") { Description = "The thread to follow" };
        var after = new Option<long?>("--after") { Description = "Start after this seq (default: the last one apex showed you on this thread)" };
        var follow = new Option<bool>("--follow") { Description = "Keep following new runs until Ctrl+C (default: stop once caught up and no run is active)" };
        var command = new Command("resume", "Show what happened on a thread since you last looked, then follow its active runs live") { thread, after, follow };
        options.SetAction(command, async (parse, output, ct) =>
        {
            var session = await options.SessionAsync(parse, ct);
            var threadId = parse.GetValue(thread)!;
            var target = await session.Client.GetThreadAsync(threadId, ct).OrNotFound(NoThread(threadId));
            var cursor = parse.GetValue(after) ?? session.Config.LastSeenSeq(threadId) ?? 0;
            var open = new HashSet<string>(StringComparer.Ordinal);
            await foreach (var run in AllRunsAsync(session.Client, threadId, ct))
                // A run that waits for an approval is not followed to its end: it may wait for hours (its request is shown).
                if (run.Status is "queued" or "running") open.Add(run.Id);
            var forever = parse.GetValue(follow);
            if (!forever && cursor >= target.LastSeq && open.Count == 0)
            {
                if (!output.Json) output.Note($"Up to date: nothing after seq {cursor} on this thread, and no run is active.");
                return ExitCodes.Ok;
            }
            if (!output.Json) output.Note($"Thread {target.Id} ({target.Title}) after seq {cursor}; Ctrl+C stops following (runs go on).");
            var reader = new ThreadReader(session, new EventPrinter(output), output);
            using var interrupt = new Interrupt();
            using var armed = interrupt.Arm();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, armed.Token);
            try
            {
                await reader.FollowAsync(threadId, cursor, _ => true, e =>
                {
                    // A run that parks for an approval stops being followed; one that resumes is followed again.
                    if ((e.IsTerminal || e is ApprovalRequested) && e.RunId is not null) open.Remove(e.RunId);
                    else if (e is ApprovalResolved && e.RunId is not null) open.Add(e.RunId);
                    return !forever && e.Seq >= target.LastSeq && open.Count == 0;
                }, stop.Token);
                return ExitCodes.Ok;
            }
            catch (OperationCanceledException) when (armed.Token.IsCancellationRequested)
            {
                return ExitCodes.Interrupted;
            }
        });
        return command;
    }

    private static async Task<int> TurnAsync(Session session, Output output, EventPrinter printer, string threadId, long afterSeq, string text, string? strategy,
        CancellationToken interrupt, CancellationToken cancellationToken, string? agent = null)
    {
        var sent = await session.Client.SendMessageAsync(threadId, text, strategy, agent, cancellationToken);
        if (!output.Json) output.Note($"thread {threadId} · run {sent.Run.Id}");
        var reader = new ThreadReader(session, printer, output);
        return await reader.FollowRunAsync(threadId, afterSeq, sent.Run.Id, interrupt, cancellationToken, (asked, ct) => ApprovalCommands.PromptAsync(session, output, asked, ct));
    }

    /// <summary>Every run of a thread, oldest first, across pages.</summary>
    public static async IAsyncEnumerable<RunDto> AllRunsAsync(ApexClient client, string threadId,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? cursor = null;
        do
        {
            var page = await client.ListRunsAsync(threadId, 200, cursor, cancellationToken);
            foreach (var run in page.Items) yield return run;
            cursor = page.NextCursor;
        } while (cursor is not null);
    }

    public static string NoThread(string id) => $"No thread {id} of yours on this server (`apex threads` lists them).";

    private static string Title(string question)
    {
        var line = question.ReplaceLineEndings(" ").Trim();
        return line.Length <= TitleChars ? line : line[..(TitleChars - 1)] + "…";
    }
}
