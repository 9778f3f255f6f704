using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Apex.Client;

namespace Apex.Bench;

// OtherServers: more nodes of the same cluster; user i talks to node i mod n (its runs may execute on any node).
// OtherServerPids: their processes, whose CPU is added to the first one's.
public sealed record SseLoadOptions(Uri Server, int Users, int Runs, int Warmup, TimeSpan TimeLimit, TimeSpan RunTimeLimit, int? ServerPid = null,
    IReadOnlyList<Uri>? OtherServers = null, IReadOnlyList<int>? OtherServerPids = null, string? AgentDefinition = null, bool SampleData = false);

public sealed record SseLoadReport(int Users, int Runs, int Warmup, int Completed, int NotCompleted, int Errors, double Seconds, double RunsPerSecond,
    long Events, double EventsPerSecond, Percentiles TimeToFirstEventMs, Percentiles TimeToTerminalMs, long Lost, long Duplicated, long Foreign,
    IReadOnlyDictionary<string, int> EndsOtherThanCompleted, IReadOnlyDictionary<string, int> ErrorKinds,
    double? ServerCpuSeconds, double? ServerCpuMsPerRun, double? RssStartMb, double? RssPeakMb, double? RssEndMb, bool TimedOut,
    long AnswerPieces = 0, long AnswerChars = 0)
{
    public override string ToString()
    {
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture, $"users {Users}, measured runs {Runs} after {Warmup} warm-up runs, in {Seconds:0.00} s{(TimedOut ? " (time limit reached)" : "")}"),
            string.Create(CultureInfo.InvariantCulture, $"runs/s {RunsPerSecond:0.0}, events {Events}, events/s {EventsPerSecond:0}"),
            $"time to first event (POST sent -> run_queued received): {TimeToFirstEventMs}",
            $"time to terminal event (POST sent -> terminal received): {TimeToTerminalMs}",
            $"runs ended run_completed {Completed}, ended otherwise {NotCompleted}, client errors {Errors}",
        };
        lines.AddRange(EndsOtherThanCompleted.OrderByDescending(e => e.Value).Select(e => $"  ended {e.Key}: {e.Value}"));
        lines.AddRange(ErrorKinds.OrderByDescending(e => e.Value).Select(e => $"  error {e.Key}: {e.Value}"));
        lines.Add($"lost {Lost}, duplicated {Duplicated}, foreign {Foreign}");
        var measured = Completed + NotCompleted + Errors;
        if (measured > 0)
        {
            // A token is four characters, the built-in model's own estimate; every message_delta received is a stored row.
            var tokens = AnswerChars / 4.0 / measured;
            lines.Add(string.Create(CultureInfo.InvariantCulture,
                $"answer: {AnswerPieces / (double)measured:0.0} message_delta events (stored rows) a run, {AnswerChars / (double)measured:0} characters (~{tokens:0} tokens) a run"));
            if (ServerCpuMsPerRun is { } perRun && tokens > 0)
                lines.Add(string.Create(CultureInfo.InvariantCulture, $"server CPU per streamed token (the whole run's CPU / its tokens): {perRun * 1000 / tokens:0.0} µs"));
        }
        if (ServerCpuSeconds is { } cpu)
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"server CPU {cpu:0.00} s over the measured runs, {ServerCpuMsPerRun:0.00} ms per run"));
        if (RssStartMb is not null)
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"server RSS: start {RssStartMb:0.0} MB, peak {RssPeakMb:0.0} MB, end {RssEndMb:0.0} MB"));
        return string.Join(Environment.NewLine, lines);
    }
}

/// <summary>
/// Drives a running server the way an HTTP client without a socket does (the shape of issue 14's
/// side-by-side comparison): each user, in a loop, creates a thread, sends one message and reads the
/// thread's events over SSE until the run's terminal event, then starts again (to the shipped team, or to the agent of
/// <see cref="SseLoadOptions.AgentDefinition"/>, which each user defines first). The first
/// <see cref="SseLoadOptions.Warmup"/> runs are not measured; the clock and the server's CPU counter
/// start when the last of them ends. Every event is checked for per-thread seq continuity (each
/// thread is new, so its events are 1, 2, 3, …) and for belonging to the user and the thread.
/// </summary>
public static class SseLoadGenerator
{
    private const string Password = "load-test-password";

    public static async Task<SseLoadReport> RunAsync(SseLoadOptions options, TextWriter? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Users);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Runs);
        ArgumentOutOfRangeException.ThrowIfNegative(options.Warmup);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(options.TimeLimit);
        var ct = limit.Token;

        Uri[] servers = [options.Server, .. options.OtherServers ?? []];
        var clients = await Task.WhenAll(Enumerable.Range(0, options.Users).Select(async i =>
        {
            // No drain of an abandoned SSE response: the connection closes at once, so the server
            // drops its follower at once instead of feeding it for the default two seconds.
            var handler = new SocketsHttpHandler { ResponseDrainTimeout = TimeSpan.Zero, PooledConnectionLifetime = Timeout.InfiniteTimeSpan };
            var client = new ApexClient(new HttpClient(handler) { BaseAddress = servers[i % servers.Length], Timeout = Timeout.InfiniteTimeSpan });
            await client.RegisterAsync($"sse-{Guid.NewGuid():N}@example.com", Password, ct);
            // With an agent definition, each user defines it as their own and every message names it.
            if (options.AgentDefinition is { } definition) await client.CreateAgentAsync(definition, ct);
            // With sample data the shipped team analyses it and writes its full report (~2,000 characters) instead of asking for data.
            if (options.SampleData) await client.GenerateSampleWorkloadAsync(new SampleWorkloadRequest(), ct);
            return client;
        }));
        progress?.WriteLine($"{clients.Length} users registered; {options.Warmup} warm-up runs, then {options.Runs} measured runs");

        var total = options.Warmup + options.Runs;
        var agent = options.AgentDefinition is { } json ? System.Text.Json.JsonDocument.Parse(json).RootElement.GetProperty("name").GetString() : null;
        long tickets = 0, finished = 0, events = 0, pieces = 0, chars = 0, lost = 0, duplicated = 0, foreign = 0, completed = 0, notCompleted = 0, errors = 0;
        var firstEvent = new ConcurrentBag<double>();
        var terminal = new ConcurrentBag<double>();
        var ends = new ConcurrentDictionary<string, int>();
        var errorKinds = new ConcurrentDictionary<string, int>();
        var measuring = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        long measureStart = 0;
        double? cpuStart = null;
        var rssStart = Rss(options.ServerPid);
        var peak = rssStart ?? 0;

        void Finished()
        {
            if (Interlocked.Increment(ref finished) == options.Warmup)
            {
                measureStart = Stopwatch.GetTimestamp();
                cpuStart = CpuSeconds(options);
                measuring.TrySetResult();
            }
        }
        if (options.Warmup == 0)
        {
            measureStart = Stopwatch.GetTimestamp();
            cpuStart = CpuSeconds(options);
            measuring.TrySetResult();
        }

        using var sampler = new CancellationTokenSource();
        var sampling = Task.Run(async () =>
        {
            while (!sampler.IsCancellationRequested)
            {
                if (Rss(options.ServerPid) is { } rss) peak = Math.Max(peak, rss);
                try { await Task.Delay(250, sampler.Token); } catch (OperationCanceledException) { }
            }
        }, CancellationToken.None);

        var timedOut = false;
        try
        {
            await Task.WhenAll(clients.Select(client => Task.Run(async () =>
            {
                var userId = client.Tokens!.User.Id;
                while (Interlocked.Increment(ref tickets) is var ticket && ticket <= total)
                {
                    var measured = ticket > options.Warmup;
                    using var runLimit = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    runLimit.CancelAfter(options.RunTimeLimit);
                    try
                    {
                        var run = await OneRunAsync(client, userId, agent, runLimit.Token);
                        if (measured)
                        {
                            Interlocked.Add(ref events, run.Events);
                            Interlocked.Add(ref pieces, run.Pieces);
                            Interlocked.Add(ref chars, run.Chars);
                            Interlocked.Add(ref lost, run.Lost);
                            Interlocked.Add(ref duplicated, run.Duplicated);
                            Interlocked.Add(ref foreign, run.Foreign);
                            if (run.FirstEventMs is { } f) firstEvent.Add(f);
                            terminal.Add(run.TerminalMs);
                            if (run.End == EventTypes.RunCompleted) Interlocked.Increment(ref completed);
                            else
                            {
                                Interlocked.Increment(ref notCompleted);
                                ends.AddOrUpdate(run.End, 1, (_, n) => n + 1);
                            }
                        }
                    }
                    catch (OperationCanceledException) when (ct.IsCancellationRequested)
                    {
                        throw;
                    }
                    catch (Exception e) when (e is OperationCanceledException or HttpRequestException or ApexApiException or IOException or InvalidOperationException)
                    {
                        // A run the client could not follow to its end: counted, and the user goes on.
                        if (measured) Interlocked.Increment(ref errors);
                        var kind = e switch
                        {
                            OperationCanceledException => $"no terminal event within {options.RunTimeLimit.TotalSeconds:0} s",
                            ApexApiException api => $"HTTP {(int)api.Status}",
                            _ => e.GetType().Name + ": " + e.Message,
                        };
                        errorKinds.AddOrUpdate(kind, 1, (_, n) => n + 1);
                    }
                    Finished();
                }
            }, CancellationToken.None)));
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            timedOut = true;
        }
        var measureEnd = Stopwatch.GetTimestamp();
        var cpuEnd = CpuSeconds(options);
        var rssEnd = Rss(options.ServerPid);
        await sampler.CancelAsync();
        await sampling;
        foreach (var client in clients) client.Dispose();

        var seconds = measuring.Task.IsCompleted ? Stopwatch.GetElapsedTime(measureStart, measureEnd).TotalSeconds : 0;
        var measuredRuns = (int)(completed + notCompleted + errors);
        double? cpu = cpuStart is { } a && cpuEnd is { } b ? b - a : null;
        return new SseLoadReport(options.Users, options.Runs, options.Warmup, (int)completed, (int)notCompleted, (int)errors, seconds,
            seconds > 0 ? measuredRuns / seconds : 0, events, seconds > 0 ? events / seconds : 0,
            Percentiles.Of([.. firstEvent]), Percentiles.Of([.. terminal]), lost, duplicated, foreign,
            new Dictionary<string, int>(ends), new Dictionary<string, int>(errorKinds),
            cpu, cpu is { } c && measuredRuns > 0 ? c * 1000 / measuredRuns : null, rssStart, options.ServerPid is null ? null : peak, rssEnd, timedOut, pieces, chars);
    }

    private sealed record RunResult(string End, double? FirstEventMs, double TerminalMs, long Events, long Lost, long Duplicated, long Foreign, long Pieces, long Chars);

    private static async Task<RunResult> OneRunAsync(ApexClient client, string userId, string? agent, CancellationToken ct)
    {
        var thread = await client.CreateThreadAsync(cancellationToken: ct);
        var sent = Stopwatch.GetTimestamp();
        var accepted = await client.SendMessageAsync(thread.Id, "How can I cut my LLM costs?", null, agent, ct);
        double? first = null;
        long cursor = 0, events = 0, lost = 0, duplicated = 0, foreign = 0, pieces = 0, chars = 0;
        await foreach (var evt in client.StreamEventsAsync(thread.Id, cancellationToken: ct))
        {
            if (evt.Seq == 0) continue;
            events++;
            if (evt.UserId != userId || evt.ThreadId != thread.Id) { foreign++; continue; }
            if (evt.Seq <= cursor) { duplicated++; continue; }
            if (evt.Seq > cursor + 1) lost += evt.Seq - cursor - 1;
            cursor = evt.Seq;
            if (evt is MessageDelta delta && evt.RunId == accepted.Run.Id) { pieces++; chars += delta.Data.Delta.Length; }
            if (evt is RunQueued && evt.RunId == accepted.Run.Id) first ??= Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
            if (evt.IsTerminal && evt.RunId == accepted.Run.Id)
            {
                var end = evt switch
                {
                    RunFailed failed => $"run_failed ({failed.Data.Reason})",
                    RunCancelled cancelled => $"run_cancelled ({cancelled.Data.Reason})",
                    _ => evt.Type,
                };
                return new RunResult(end, first, Stopwatch.GetElapsedTime(sent).TotalMilliseconds, events, lost, duplicated, foreign, pieces, chars);
            }
        }
        throw new IOException("The event stream ended before the run's terminal event.");
    }

    private static double? CpuSeconds(SseLoadOptions options) =>
        CpuSeconds(options.ServerPid) is { } first ? first + (options.OtherServerPids ?? []).Sum(pid => CpuSeconds(pid) ?? 0) : null;

    /// <summary>utime + stime of a process from <c>/proc/&lt;pid&gt;/stat</c>, in seconds (USER_HZ is 100 on Linux).</summary>
    private static double? CpuSeconds(int? pid)
    {
        if (pid is null) return null;
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    internal static double? Rss(int? pid)
    {
        if (pid is null) return null;
        var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return line is null ? null : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }
}
