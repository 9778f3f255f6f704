using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using Apex.Client;

namespace Apex.Bench;

public sealed record LoadOptions(Uri Server, int Users, int MessagesPerUser, TimeSpan TimeLimit, int IdleSockets = 0, int? ServerPid = null, int IdleHoldSeconds = 2);

public sealed record Percentiles(double P50, double P95, double P99)
{
    public static Percentiles Of(List<double> values)
    {
        if (values.Count == 0) return new(0, 0, 0);
        var sorted = values.Order().ToArray();
        double At(double p) => sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];
        return new(At(50), At(95), At(99));
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"p50 {P50:0.00} ms, p95 {P95:0.00} ms, p99 {P99:0.00} ms");
}

public sealed record LoadReport(int Users, int RunsCompleted, int RunsFailed, double Seconds, double RunsPerSecond, double EventsPerSecond, long Events,
    Percentiles TimeToFirstEventMs, Percentiles TimeToTerminalMs, long Lost, long Duplicated, long Foreign,
    double? RssAtRestMb, double? RssWithIdleSocketsMb, int IdleSockets, double? IdleKbPerSocket, double? RssPeakUnderLoadMb, bool TimedOut,
    double? RssWithHalfTheIdleSocketsMb = null, double? IdleMarginalKbPerSocket = null)
{
    public override string ToString() => string.Join(Environment.NewLine, new[]
    {
        string.Create(CultureInfo.InvariantCulture, $"users {Users}, runs completed {RunsCompleted}, failed {RunsFailed}, in {Seconds:0.00} s{(TimedOut ? " (time limit reached)" : "")}"),
        string.Create(CultureInfo.InvariantCulture, $"runs/s {RunsPerSecond:0.0}, events {Events}, events/s {EventsPerSecond:0}"),
        $"time to first event: {TimeToFirstEventMs}",
        $"time to terminal event: {TimeToTerminalMs}",
        $"lost {Lost}, duplicated {Duplicated}, foreign {Foreign}",
        string.Create(CultureInfo.InvariantCulture, $"server RSS: at rest {RssAtRestMb:0.0} MB, with {IdleSockets} idle sockets {RssWithIdleSocketsMb:0.0} MB ({IdleKbPerSocket:0.0} KB/socket), peak under load {RssPeakUnderLoadMb:0.0} MB"),
        IdleMarginalKbPerSocket is null ? "" : string.Create(CultureInfo.InvariantCulture,
            $"idle sockets on a warm server: the second {IdleSockets - IdleSockets / 2} took RSS from {RssWithHalfTheIdleSocketsMb:0.0} to {RssWithIdleSocketsMb:0.0} MB ({IdleMarginalKbPerSocket:0.0} KB each, marginal)"),
    }.Where(line => line.Length > 0));
}

/// <summary>
/// Drives a running server exactly as clients do: users sign up, connect over WebSocket and send
/// messages, one at a time each, until all are answered or the time limit is reached. Every
/// received event is checked: per-thread seq continuity (lost, duplicated) and ownership (foreign).
/// </summary>
public static class LoadGenerator
{
    private const string Password = "load-test-password";

    public static async Task<LoadReport> RunAsync(LoadOptions options, TextWriter? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.Users);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MessagesPerUser);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(options.TimeLimit);
        var ct = limit.Token;

        var rest = Rss(options.ServerPid);
        double? idleRss = null, halfRss = null;
        if (options.IdleSockets > 0)
        {
            // Opened in two halves: from rest, the figure includes what the first sockets cost once (the code of the socket
            // path compiled, the heap grown); the second half alone is what one more idle socket costs a warm server.
            var tokens = await RegisterIdleAccountsAsync(options, ct);
            var half = options.IdleSockets / 2;
            var sockets = await OpenIdleSocketsAsync(options, tokens, 0, half, ct);
            await Task.Delay(TimeSpan.FromSeconds(2), ct);
            halfRss = Rss(options.ServerPid);
            sockets.AddRange(await OpenIdleSocketsAsync(options, tokens, half, options.IdleSockets - half, ct));
            // Held open a while before the RSS is read (longer to take a gcdump of the server with them open).
            progress?.WriteLine($"{sockets.Count} idle sockets open; RSS read in {options.IdleHoldSeconds} s");
            await Task.Delay(TimeSpan.FromSeconds(options.IdleHoldSeconds), ct);
            idleRss = Rss(options.ServerPid);
            foreach (var socket in sockets) socket.Abort();
            foreach (var socket in sockets) socket.Dispose();
        }

        var clients = await Task.WhenAll(Enumerable.Range(0, options.Users).Select(async i =>
        {
            var client = new ApexClient(new HttpClient { BaseAddress = options.Server });
            await client.RegisterAsync($"load-{Guid.NewGuid():N}@example.com", Password, ct);
            var thread = await client.CreateThreadAsync($"load {i}", cancellationToken: ct);
            var socket = await client.ConnectAsync(ct);
            await socket.SendAsync("switch_thread", new ThreadRefPayload(thread.Id), ApexJsonContext.Default.ThreadRefPayload, ct);
            await socket.ReceiveAsync(ct);
            return (Client: client, Socket: socket, Thread: thread.Id);
        }));
        progress?.WriteLine($"{clients.Length} users connected; sending {options.MessagesPerUser} messages each");

        var firstEvent = new ConcurrentBag<double>();
        var terminal = new ConcurrentBag<double>();
        long events = 0, lost = 0, duplicated = 0, foreign = 0, completed = 0, failed = 0;
        var peak = rest ?? 0;
        using var sampler = new CancellationTokenSource();
        var sampling = Task.Run(async () =>
        {
            while (!sampler.IsCancellationRequested)
            {
                if (Rss(options.ServerPid) is { } rss) peak = Math.Max(peak, rss);
                try { await Task.Delay(250, sampler.Token); } catch (OperationCanceledException) { }
            }
        });

        var clock = Stopwatch.StartNew();
        var timedOut = false;
        try
        {
            await Task.WhenAll(clients.Select(async c =>
            {
                var userId = c.Client.Tokens!.User.Id;
                long cursor = 0;
                for (var m = 0; m < options.MessagesPerUser; m++)
                {
                    var sent = Stopwatch.GetTimestamp();
                    await c.Socket.SendMessageAsync($"How can I cut my LLM costs? ({m})", c.Thread, cancellationToken: ct);
                    var first = true;
                    while (true)
                    {
                        var evt = await c.Socket.ReceiveAsync(ct) ?? throw new WebSocketException("closed");
                        if (evt.Seq == 0) continue;
                        Interlocked.Increment(ref events);
                        if (evt.UserId != userId || evt.ThreadId != c.Thread) { Interlocked.Increment(ref foreign); continue; }
                        if (evt.Seq <= cursor) { Interlocked.Increment(ref duplicated); continue; }
                        if (evt.Seq > cursor + 1) Interlocked.Add(ref lost, evt.Seq - cursor - 1);
                        cursor = evt.Seq;
                        if (first)
                        {
                            firstEvent.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                            first = false;
                        }
                        if (evt.IsTerminal)
                        {
                            terminal.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                            Interlocked.Increment(ref evt is RunCompleted ? ref completed : ref failed);
                            break;
                        }
                    }
                }
                // Anything stored that never arrived is lost.
                var stored = (await c.Client.GetThreadAsync(c.Thread, ct)).LastSeq;
                if (stored > cursor) Interlocked.Add(ref lost, stored - cursor);
            }));
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            timedOut = true;
        }
        clock.Stop();
        await sampler.CancelAsync();
        await sampling;
        foreach (var c in clients)
        {
            c.Socket.Socket.Abort();
            c.Socket.Dispose();
            c.Client.Dispose();
        }

        var seconds = clock.Elapsed.TotalSeconds;
        return new LoadReport(options.Users, (int)completed, (int)failed, seconds, completed / seconds, events / seconds, events,
            Percentiles.Of([.. firstEvent]), Percentiles.Of([.. terminal]), lost, duplicated, foreign,
            rest, idleRss, options.IdleSockets, idleRss is { } i && rest is { } r ? (i - r) * 1024 / options.IdleSockets : null,
            options.ServerPid is null ? null : peak, timedOut,
            halfRss, idleRss is { } all && halfRss is { } h && options.IdleSockets - options.IdleSockets / 2 > 0 ? (all - h) * 1024 / (options.IdleSockets - options.IdleSockets / 2) : null);
    }

    private static async Task<List<string>> RegisterIdleAccountsAsync(LoadOptions options, CancellationToken ct)
    {
        // One account per 500 sockets: the server must allow that many connections per user (Apex:Limits:MaxConnectionsPerUser).
        var accounts = (options.IdleSockets + 499) / 500;
        var tokens = new List<string>();
        for (var a = 0; a < accounts; a++)
        {
            using var client = new ApexClient(new HttpClient { BaseAddress = options.Server });
            tokens.Add((await client.RegisterAsync($"idle-{Guid.NewGuid():N}@example.com", Password, ct)).AccessToken);
        }
        return tokens;
    }

    /// <summary>Opens sockets <paramref name="from"/> .. <paramref name="from"/> + <paramref name="count"/>, each on account i % accounts.</summary>
    private static async Task<List<ClientWebSocket>> OpenIdleSocketsAsync(LoadOptions options, List<string> tokens, int from, int count, CancellationToken ct)
    {
        var uri = new UriBuilder(new Uri(options.Server, "ws")) { Scheme = options.Server.Scheme == "https" ? "wss" : "ws" }.Uri;
        var sockets = new ConcurrentBag<ClientWebSocket>();
        using var gate = new SemaphoreSlim(64);
        await Task.WhenAll(Enumerable.Range(from, count).Select(async i =>
        {
            await gate.WaitAsync(ct);
            try
            {
                var socket = new ClientWebSocket();
                socket.Options.SetRequestHeader("Authorization", "Bearer " + tokens[i % tokens.Count]);
                await socket.ConnectAsync(uri, ct);
                var buffer = new byte[1024];
                await socket.ReceiveAsync(buffer, ct); // connection_established: registered and authenticated
                sockets.Add(socket);
            }
            finally
            {
                gate.Release();
            }
        }));
        return [.. sockets];
    }

    /// <summary>Resident set size of a process on Linux, in MB.</summary>
    private static double? Rss(int? pid)
    {
        if (pid is null) return null;
        var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return line is null ? null : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }
}
