using System.Globalization;
using System.Net;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Apex.Client;
using Spectre.Console;

namespace Apex.Cli;

/// <summary>
/// Where a command writes: results to stdout (Spectre markup on a terminal; plain, unwrapped text in a pipe or file; one JSON
/// document or JSON line per result with <c>--json</c>), notes and errors to stderr, so stdout stays parseable.
/// </summary>
internal sealed class Output
{
    public Output(bool json)
    {
        Json = json;
        Out = Create(Console.Out, Console.IsOutputRedirected);
        Err = Create(Console.Error, Console.IsErrorRedirected);
    }

    public bool Json { get; }

    public IAnsiConsole Out { get; }

    public IAnsiConsole Err { get; }

    /// <summary>Whether a person watches stdout (progress bars and prompts only then).</summary>
    public bool Interactive => !Json && !Console.IsOutputRedirected;

    public void WriteJson<T>(T value, JsonTypeInfo<T> type)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        // Readable text in a terminal or a log: only what JSON itself requires is escaped (no \u0027 for an apostrophe).
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
            JsonSerializer.Serialize(writer, value, type);
        Console.Out.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan));
        Console.Out.Flush();
    }

    public void Line(string markup) => Out.MarkupLine(markup);

    public void Note(string text) => Err.MarkupLine($"[grey]{Markup.Escape(text)}[/]");

    public void Error(string text) => Err.MarkupLine($"[red]error:[/] {Markup.Escape(text)}");

    /// <summary>A server's refusal in one sentence: its status, the ProblemDetails title and detail, and any field errors.</summary>
    public static string Describe(ApexApiException e)
    {
        if (e.Status == HttpStatusCode.Unauthorized) return "The server refused the credentials (401): run `apex login`.";
        var text = $"The server answered {(int)e.Status} {e.Status}";
        try
        {
            using var problem = JsonDocument.Parse(e.Body);
            var root = problem.RootElement;
            if (root.ValueKind != JsonValueKind.Object) return text + ".";
            if (root.TryGetProperty("title", out var title) && title.ValueKind == JsonValueKind.String) text += $": {title.GetString()}";
            if (root.TryGetProperty("detail", out var detail) && detail.ValueKind == JsonValueKind.String) text += $" ({detail.GetString()})";
            if (root.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
                text += " " + string.Join("; ", errors.EnumerateObject().Select(f => $"{f.Name}: {string.Join(" ", f.Value.EnumerateArray().Select(m => m.GetString()))}"));
        }
        catch (JsonException)
        {
            if (e.Body.Length > 0) text += ": " + e.Body[..Math.Min(200, e.Body.Length)];
        }
        return text + ".";
    }

    public static string Ms(double milliseconds) => milliseconds < 1000
        ? milliseconds.ToString("0", CultureInfo.InvariantCulture) + " ms"
        : (milliseconds / 1000).ToString("0.0", CultureInfo.InvariantCulture) + " s";

    public static string Usd(double? cost) => cost switch
    {
        null => "n/a",
        0 => "$0.00",
        < 1 and var c => "$" + c.ToString("0.0000", CultureInfo.InvariantCulture),
        var c => "$" + c.Value.ToString("#,0.00", CultureInfo.InvariantCulture),
    };

    public static string Count(long n) => n.ToString("#,0", CultureInfo.InvariantCulture);

    public static string When(DateTimeOffset? at) => at?.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "";

    private static IAnsiConsole Create(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = redirected ? AnsiSupport.No : AnsiSupport.Detect,
            ColorSystem = redirected ? ColorSystemSupport.NoColors : ColorSystemSupport.Detect,
            Interactive = redirected ? InteractionSupport.No : InteractionSupport.Detect,
            Out = new AnsiConsoleOutput(writer),
        });
        // A pipe or a file has no width: never wrap lines there (a script reads them whole).
        if (redirected) console.Profile.Width = 4096;
        return console;
    }
}

/// <summary>Shows a run's events: one line per step (thinking dimmed), the answer as it streams, or each event as a JSON line.</summary>
internal sealed class EventPrinter(Output output)
{
    private const int ArgumentsShown = 120;
    private readonly Dictionary<string, int> _depths = new(StringComparer.Ordinal);
    private bool _inAnswer;
    private int _trailingNewlines;

    public void Print(ApexEvent evt)
    {
        if (output.Json)
        {
            output.WriteJson(evt, ApexJsonContext.Default.ApexEvent);
            return;
        }
        if (evt is MessageDelta delta)
        {
            if (!_inAnswer) Console.Out.WriteLine();
            _inAnswer = true;
            Console.Out.Write(delta.Data.Delta);
            Console.Out.Flush();
            var text = delta.Data.Delta.AsSpan();
            var trailing = text.Length - text.TrimEnd('\n').Length;
            _trailingNewlines = trailing == text.Length ? _trailingNewlines + trailing : trailing;
            return;
        }
        EndAnswer();
        var indent = new string(' ', 2 * Depth(evt.AgentName));
        switch (evt)
        {
            case RunQueued { Data.Position: > 0 } queued:
                output.Line($"[grey]queued behind {queued.Data.Position} run(s)[/]");
                break;
            case AgentStarted started:
                _depths[started.Data.Agent] = started.Data.Depth;
                output.Line($"{new string(' ', 2 * started.Data.Depth)}[bold]▶ {Markup.Escape(started.Data.Agent)}[/]");
                break;
            case AgentThinking thinking:
                output.Line($"{indent}  [dim]… {Markup.Escape(thinking.Data.Text)}[/]");
                break;
            case ToolExecuting tool:
                output.Line($"{indent}  [blue]⚙ {Markup.Escape(tool.Data.Tool)}[/] [grey]{Markup.Escape(Shorten(tool.Data.Arguments.GetRawText()))}[/]");
                break;
            case ToolCompleted tool:
                var mark = tool.Data.Status == "ok" ? "[green]✓[/]" : "[red]✗[/]";
                var error = tool.Data.Error is { Length: > 0 } e ? $": {Markup.Escape(e)}" : "";
                output.Line($"{indent}  {mark} {Markup.Escape(tool.Data.Tool)} {Markup.Escape(tool.Data.Status)} · {Output.Ms(tool.Data.DurationMs)}{error}");
                break;
            case AgentCompleted done:
                var colour = done.Data.Status == "ok" ? "green" : "yellow";
                output.Line($"{indent}[{colour}]■ {Markup.Escape(done.Data.Agent)} {Markup.Escape(done.Data.Status)}[/] · {Output.Ms(done.Data.DurationMs)}");
                break;
            case AgentError failure:
                output.Line($"{indent}[red]! {Markup.Escape(failure.Data.Agent)} {Markup.Escape(failure.Data.Code)}: {Markup.Escape(failure.Data.Message)}[/]");
                break;
            case ApprovalRequested asked:
                output.Line($"{indent}  [yellow]⏸ {Markup.Escape(asked.Data.Tool)} waits for approval[/] [grey]{Markup.Escape(Shorten(asked.Data.Arguments.GetRawText()))}[/] " +
                    $"[grey](run {Markup.Escape(asked.RunId ?? "")}, call {Markup.Escape(asked.Data.CallId)})[/]");
                break;
            case ApprovalResolved resolved:
                var why = resolved.Data.Reason is { Length: > 0 } r ? $": {Markup.Escape(r)}" : "";
                var edited = resolved.Data.Arguments is { } a ? $" [grey]with {Markup.Escape(Shorten(a.GetRawText()))}[/]" : "";
                output.Line($"{indent}  [yellow]⏵ {Markup.Escape(resolved.Data.Tool)} {Markup.Escape(resolved.Data.Status)}[/]{edited}{why}");
                break;
            case RunCompleted completed:
                var usage = completed.Data.Usage is { } u ? $" · {Output.Count(u.InputTokens)} tokens in, {Output.Count(u.OutputTokens)} out · {Output.Usd(u.CostUsd)}" : "";
                var note = completed.Data.Note is { Length: > 0 } n ? $" [yellow]({Markup.Escape(n)})[/]" : "";
                output.Line($"[green]✔ run_completed[/] in {Output.Ms(completed.Data.DurationMs)}{usage}{note}");
                break;
            case RunFailed failed:
                output.Line($"[red]✘ run_failed ({Markup.Escape(failed.Data.Reason)}): {Markup.Escape(failed.Data.Message)}[/]");
                break;
            case RunCancelled cancelled:
                output.Line($"[yellow]✘ run_cancelled ({Markup.Escape(cancelled.Data.Reason)})[/]");
                break;
        }
    }

    /// <summary>Ends the answer's last line, so what follows starts on its own.</summary>
    public void EndAnswer()
    {
        if (!_inAnswer) return;
        _inAnswer = false;
        // One blank line between the answer and what follows, however the answer ended.
        for (var i = _trailingNewlines; i < 2; i++) Console.Out.WriteLine();
        _trailingNewlines = 0;
    }

    private int Depth(string? agent) => agent is not null && _depths.TryGetValue(agent, out var depth) ? depth : 0;

    private static string Shorten(string text) => text.Length <= ArgumentsShown ? text : text[..ArgumentsShown] + "…";
}
