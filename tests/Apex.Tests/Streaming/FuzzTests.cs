using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Apex.Tests.Streaming;

/// <summary>
/// A bounded protocol fuzz of <c>/ws</c>, SSE and uploads: random frames, sizes, encodings and cursors from a seeded
/// <see cref="Random"/> (a fresh seed each run, printed; <c>APEX_FUZZ_SEED</c> replays one). The server must answer every
/// input with an answer of the protocol (an <c>error</c> frame, a 4xx ProblemDetails), never a 5xx, log no error, and
/// stay usable: the socket still answers <c>ping</c>, the next request is served.
/// </summary>
public sealed class FuzzTests(LoggedServer shared, ITestOutputHelper output) : IClassFixture<LoggedServer>
{
    private const int SocketBatches = 12;
    private const int FramesPerBatch = 25;
    private const int SseCases = 60;
    private const int UploadCases = 40;

    private static readonly HashSet<string> ErrorCodes = new(StringComparer.Ordinal)
    {
        "bad_json", "frame_too_large", "unknown_type", "invalid_payload", "not_found", "unauthorized", "run_finished",
        "too_many_follows", "rate_limited", "thread_busy", "queue_full", "thread_limit",
    };

    private static readonly string[] FrameTypes = ["user_message", "start_agent", "stop_agent", "resume", "get_thread_history", "switch_thread", "reauth", "ping"];

    private static readonly string[] PayloadFields = ["content", "thread_id", "strategy", "run_id", "after_seq", "token"];

    private static readonly string[] Numbers =
        ["0", "-1", "-0", "1.5", "1e400", "-1e400", "1E-400", "9223372036854775807", "9223372036854775808", "-9223372036854775809",
         "99999999999999999999999999999999", "0.0000000000000000000000001", "123456789012345678901234567890e10"];

    private ApexTestServer Server => shared.Server;

    private static int Seed() =>
        Environment.GetEnvironmentVariable("APEX_FUZZ_SEED") is { Length: > 0 } seed ? int.Parse(seed, CultureInfo.InvariantCulture) : Random.Shared.Next();

    [Fact]
    public async Task RandomSocketFramesAreAnsweredWithinTheProtocolAndTheSocketStillAnswersPing()
    {
        var seed = Seed();
        output.WriteLine($"seed {seed} (APEX_FUZZ_SEED={seed} replays it)");
        var rng = new Random(seed);
        var ct = Waits.Timeout(60);
        using var user = await Server.NewUserAsync();
        var userId = (await user.MeAsync(ct)).Id;
        var errorsBefore = shared.Log.Errors.Count();
        var failures = new List<string>();
        using var socket = await user.ConnectAsync(ct);
        var max = socket.Established!.Data.MaxFrameBytes;
        var sent = 0;
        var tally = new SortedDictionary<string, int>(StringComparer.Ordinal);

        for (var batch = 0; batch < SocketBatches; batch++)
        {
            var frames = Enumerable.Range(0, FramesPerBatch).Select(_ => RandomFrame(rng, max)).ToList();
            foreach (var frame in frames)
            {
                await SendAsync(socket.Socket, frame, ct);
                sent++;
            }
            // Frames are answered in order: a marker of this batch (an unknown type, named in its error) comes after the whole batch's
            // answers, and the ping sent after it must be answered next.
            var marker = $"end-of-batch-{batch}-{seed}";
            await socket.SendFrameAsync(new ClientFrame(marker), ct);
            await socket.SendFrameAsync(new ClientFrame("ping"), ct);
            var answers = await ReceiveUntilAsync(socket, e => e is ErrorFrame { Data.Code: "unknown_type" } error && error.Data.Message.Contains(marker, StringComparison.Ordinal),
                failures, $"batch {batch}", ct);
            if (answers is null) break;
            if (await socket.ReceiveAsync(ct) is not Pong) failures.Add($"batch {batch}: the socket did not answer ping after the batch");
            foreach (var answer in answers)
            {
                var kind = answer is ErrorFrame e ? e.Data.Code : answer.Type;
                tally[kind] = tally.GetValueOrDefault(kind) + 1;
                if (answer is ErrorFrame error && !ErrorCodes.Contains(error.Data.Code)) failures.Add($"batch {batch}: error code '{error.Data.Code}' is not in the protocol");
                if (answer.UserId is { } owner && owner != userId) failures.Add($"batch {batch}: a {answer.Type} of user {owner} reached this socket");
            }
        }

        // The size limit, exactly: a frame of MaxFrameBytes is handled, one byte more is refused, and so is a much larger one sent in pieces.
        foreach (var (size, expected) in new[] { (max, "pong"), (max + 1, "frame_too_large"), (max * 4, "frame_too_large") })
        {
            await SendAsync(socket.Socket, PaddedPing(size, pieces: size > max * 2 ? 5 : 1), ct);
            var answer = await socket.ReceiveAsync(ct);
            var got = answer switch { ErrorFrame e => e.Data.Code, null => "a closed socket", _ => answer.Type };
            if (got != expected) failures.Add($"a {size}-byte frame (limit {max}) answered {got}, expected {expected}");
        }
        await socket.SendFrameAsync(new ClientFrame("ping"), ct);
        if (await socket.ReceiveAsync(ct) is not Pong) failures.Add("the socket did not answer ping after the size-limit frames");

        failures.AddRange(shared.Log.Errors.Skip(errorsBefore).Select(e => "server log: " + e));
        output.WriteLine($"{sent} random frames in {SocketBatches} batches; answers: " + string.Join(", ", tally.Select(t => $"{t.Value}× {t.Key}")));
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    [Fact]
    public async Task InvalidUtf8InATextFrameClosesTheSocketAsTheWebSocketProtocolRequiresAndTheServerTakesTheNextOne()
    {
        var seed = Seed();
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        var ct = Waits.Timeout(30);
        using var user = await Server.NewUserAsync();
        var errorsBefore = shared.Log.Errors.Count();
        var failures = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            using var socket = await user.ConnectAsync(ct);
            var bytes = InvalidUtf8(rng);
            await socket.Socket.SendAsync(bytes, WebSocketMessageType.Text, true, ct);
            // RFC 6455 8.1: a text frame that is not UTF-8 fails the connection with 1007 (ManagedWebSocket does it before the protocol sees the frame).
            var answer = await socket.ReceiveTextAsync(ct);
            if (answer is not null || socket.Socket.CloseStatus != WebSocketCloseStatus.InvalidPayloadData)
                failures.Add($"invalid UTF-8 {Convert.ToHexString(bytes)} answered {answer ?? "a close"} with status {socket.Socket.CloseStatus}, expected a 1007 close");
        }
        using (var next = await user.ConnectAsync(ct))
        {
            await next.SendFrameAsync(new ClientFrame("ping"), ct);
            Assert.IsType<Pong>(await next.ReceiveAsync(ct));
        }
        failures.AddRange(shared.Log.Errors.Skip(errorsBefore).Select(e => "server log: " + e));
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    [Fact]
    public async Task RandomSseCursorsAreAnswered200Or400Or404AndNeverAServerError()
    {
        var seed = Seed();
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        var ct = Waits.Timeout(60);
        using var user = await Server.NewUserAsync();
        var thread = await user.CreateThreadAsync(cancellationToken: ct);
        var run = await user.SendMessageAsync(thread.Id, "hello", cancellationToken: ct);
        await user.TerminalEventAsync(thread.Id, run.Run.Id, ct);
        var errorsBefore = shared.Log.Errors.Count();
        var failures = new List<string>();
        // Non-ASCII header values go out as UTF-8, as a hostile client would send them. A stream left is closed at once: by default the
        // handler drains an unfinished response for up to 2 s to reuse the connection, holding the server's stream (and the user's quota) open.
        using var http = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8, MaxResponseDrainSize = 0 })
            { BaseAddress = Server.BaseAddress };
        var opened = 0;

        for (var i = 0; i < SseCases; i++)
        {
            var threadId = rng.Next(6) == 0 ? Guid.CreateVersion7().ToString() : thread.Id;
            var cursor = RandomCursor(rng);
            var inHeader = rng.Next(2) == 0;
            var path = $"api/threads/{threadId}/events" + (inHeader ? "" : "?after=" + Uri.EscapeDataString(cursor));
            using var request = user.Authorized(HttpMethod.Get, path);
            if (inHeader) request.Headers.TryAddWithoutValidation("Last-Event-ID", cursor);
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
            var status = (int)response.StatusCode;
            var what = $"{(inHeader ? "Last-Event-ID" : "after")} '{cursor}' on {(threadId == thread.Id ? "the user's thread" : "a random thread")}";
            if (status is not (200 or 400 or 404)) failures.Add($"{what} answered {status}: {await response.Content.ReadAsStringAsync(ct)}");
            else if (status == 200) opened++;
            else if (response.Content.Headers.ContentType?.MediaType != "application/problem+json")
                failures.Add($"{what} answered {status} without a ProblemDetails ({response.Content.Headers.ContentType})");
        }

        // Still serving: the thread's stream from the start replays its run.
        Assert.IsType<RunQueued>(await user.StreamEventsAsync(thread.Id, 0, cancellationToken: ct).FirstAsync(ct));
        failures.AddRange(shared.Log.Errors.Skip(errorsBefore).Select(e => "server log: " + e));
        output.WriteLine($"{SseCases} cursors, {opened} streams opened");
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    [Fact]
    public async Task RandomUploadsAreAnsweredWithAReportOrAProblemAndTheNextRequestIsServed()
    {
        var seed = Seed();
        output.WriteLine($"seed {seed}");
        var rng = new Random(seed);
        var ct = Waits.Timeout(60);
        using var user = await Server.NewUserAsync();
        var errorsBefore = shared.Log.Errors.Count();
        var failures = new List<string>();
        var statuses = new SortedDictionary<int, int>();

        for (var i = 0; i < UploadCases; i++)
        {
            var (name, body, contentType) = RandomUpload(rng);
            using var content = new ByteArrayContent(body);
            if (contentType is not null) content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            using var response = await user.Http.SendAsync(user.Authorized(HttpMethod.Post, "api/workloads", content), ct);
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            var text = await response.Content.ReadAsStringAsync(ct);
            var what = $"upload {i} ({name}, {body.Length} bytes, content type {contentType ?? "none"})";
            if (status >= 500) failures.Add($"{what} answered {status}: {Short(text)}");
            else if (status >= 400 && (response.Content.Headers.ContentType?.MediaType != "application/problem+json" || !IsProblem(text, status)))
                failures.Add($"{what} answered {status} without a ProblemDetails: {Short(text)}");
            using var next = await user.Http.SendAsync(user.Authorized(HttpMethod.Get, "api/workloads"), ct);
            if (!next.IsSuccessStatusCode) failures.Add($"after {what} the next request answered {(int)next.StatusCode}");
        }

        failures.AddRange(shared.Log.Errors.Skip(errorsBefore).Select(e => "server log: " + e));
        output.WriteLine($"{UploadCases} uploads: " + string.Join(", ", statuses.Select(s => $"{s.Value}× {s.Key}")));
        Assert.True(failures.Count == 0, $"seed {seed}:\n" + string.Join("\n", failures));
    }

    private static async Task<List<ApexEvent>?> ReceiveUntilAsync(ApexSocket socket, Func<ApexEvent, bool> last, List<string> failures, string where, CancellationToken ct)
    {
        var answers = new List<ApexEvent>();
        while (true)
        {
            var text = await socket.ReceiveTextAsync(ct);
            if (text is null)
            {
                failures.Add($"{where}: the server closed the socket ({socket.Socket.CloseStatus} {socket.Socket.CloseStatusDescription})");
                return null;
            }
            ApexEvent? answer;
            try
            {
                answer = JsonSerializer.Deserialize(text, ApexJsonContext.Default.ApexEvent);
            }
            catch (JsonException ex)
            {
                failures.Add($"{where}: the server sent a frame that is not an event ({ex.Message}): {Short(text)}");
                continue;
            }
            if (answer is null) continue;
            answers.Add(answer);
            if (last(answer)) return answers;
        }
    }

    private static async Task SendAsync(WebSocket socket, FuzzFrame frame, CancellationToken ct)
    {
        var size = Math.Max(1, (frame.Bytes.Length + frame.Pieces - 1) / frame.Pieces);
        for (var offset = 0; offset < frame.Bytes.Length || offset == 0; offset += size)
        {
            var end = Math.Min(frame.Bytes.Length, offset + size);
            await socket.SendAsync(frame.Bytes.AsMemory(offset, end - offset), frame.Type, end >= frame.Bytes.Length, ct);
            if (end >= frame.Bytes.Length) break;
        }
    }

    /// <summary>One random frame: JSON of random shape, a frame of the protocol with fields of the wrong type, text that is not JSON,
    /// binary, deep nesting, huge numbers, unknown types, an empty frame, or a valid ping in pieces.</summary>
    private static FuzzFrame RandomFrame(Random rng, int max)
    {
        string text;
        switch (rng.Next(10))
        {
            case 0:
                text = RandomJson(rng, 4);
                break;
            case 1 or 2 or 3:
                text = WrongTypes(rng);
                break;
            case 4:
                text = RandomText(rng, rng.Next(0, 200));
                break;
            case 5:
                var binary = new byte[rng.Next(0, max + 100)];
                rng.NextBytes(binary);
                return new FuzzFrame(binary, WebSocketMessageType.Binary, rng.Next(1, 4));
            case 6:
                var depth = rng.Next(30, Math.Min(3000, max / 2 - 40));
                var open = rng.Next(2) == 0 ? "[" : "{\"a\":";
                var close = open == "[" ? "]" : "}";
                text = $"{{\"type\":\"{Pick(rng, FrameTypes)}\",\"payload\":{Repeat(open, depth)}1{Repeat(close, depth)}}}";
                break;
            case 7:
                text = $$$"""{"type":"{{{Pick(rng, ["resume", "stop_agent"])}}}","payload":{"thread_id":"x","run_id":"y","after_seq":{{{Pick(rng, Numbers)}}}}}""";
                break;
            case 8:
                text = $$"""{"type":{{JsonSerializer.Serialize(RandomText(rng, rng.Next(0, 30)))}},"payload":{{RandomJson(rng, 2)}}}""";
                break;
            default:
                return new FuzzFrame("{\"type\":\"ping\"}"u8.ToArray(), WebSocketMessageType.Text, rng.Next(1, 6));
        }
        var bytes = Encoding.UTF8.GetBytes(text);
        return new FuzzFrame(bytes, WebSocketMessageType.Text, rng.Next(4) == 0 ? rng.Next(2, 6) : 1);
    }

    /// <summary>A frame of a known type whose payload fields hold values of random types (never a valid message, so no run starts).</summary>
    private static string WrongTypes(Random rng)
    {
        var type = Pick(rng, FrameTypes);
        var fields = PayloadFields.Where(_ => rng.Next(2) == 0).Select(f => $"{JsonSerializer.Serialize(f)}:{WrongValue(rng, f)}");
        var payload = rng.Next(8) switch
        {
            0 => RandomJson(rng, 1),
            1 => "",
            _ => "{" + string.Join(",", fields) + "}",
        };
        return payload.Length == 0 ? $$"""{"type":"{{type}}"}""" : $$"""{"type":"{{type}}","payload":{{payload}}}""";
    }

    private static string WrongValue(Random rng, string field) => field switch
    {
        // content is never a non-empty string, so no fuzz frame starts a run.
        "content" => Pick(rng, ["\"\"", "42", "true", "null", "[]", "{}", "[\"hi\"]", "\"   \""]),
        _ => rng.Next(3) == 0 ? Pick(rng, Numbers) : RandomJson(rng, 2),
    };

    private static string RandomJson(Random rng, int depth) => rng.Next(depth <= 0 ? 5 : 8) switch
    {
        0 => Pick(rng, Numbers),
        1 => JsonSerializer.Serialize(RandomText(rng, rng.Next(0, 40))),
        2 => rng.Next(2) == 0 ? "true" : "false",
        3 => "null",
        // A lone surrogate is valid JSON and not a valid string.
        4 => Pick(rng, ["\"\\ud800\"", "\"\\udfff x\"", "\"\\u0000\"", "\"\\uFFFF\""]),
        5 => "[" + string.Join(",", Enumerable.Range(0, rng.Next(4)).Select(_ => RandomJson(rng, depth - 1))) + "]",
        _ => "{" + string.Join(",", Enumerable.Range(0, rng.Next(4)).Select(_ =>
            JsonSerializer.Serialize(rng.Next(3) == 0 ? Pick(rng, ["type", "payload", .. PayloadFields]) : RandomText(rng, rng.Next(1, 8))) + ":" + RandomJson(rng, depth - 1))) + "}",
    };

    private static readonly string[] Pieces = ["a", "Z", "0", "9", " ", "\"", "\\", "{", "}", "[", "]", ":", ",", "é", "漢", "😀", "\u200f", "\u0000", "\t", "\n", "ÿ", "\uFEFF"];

    private static string RandomText(Random rng, int length) => string.Concat(Enumerable.Range(0, length).Select(_ => Pick(rng, Pieces)));

    /// <summary>Bytes that are not UTF-8: a lone continuation byte, an overlong encoding, a surrogate, a truncated sequence, 0xFF.</summary>
    private static byte[] InvalidUtf8(Random rng)
    {
        byte[][] bad = [[0x80], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82], [0xFF], [0xF5, 0x80, 0x80, 0x80]];
        return [.. "{\"type\":\"ping\",\"x\":\""u8.ToArray(), .. Pick(rng, bad), .. "\"}"u8.ToArray()];
    }

    /// <summary>A ping frame of exactly <paramref name="size"/> bytes (a padding field).</summary>
    private static FuzzFrame PaddedPing(int size, int pieces)
    {
        const string head = "{\"type\":\"ping\",\"pad\":\"";
        const string tail = "\"}";
        return new FuzzFrame(Encoding.UTF8.GetBytes(head + new string('x', size - head.Length - tail.Length) + tail), WebSocketMessageType.Text, pieces);
    }

    private static string RandomCursor(Random rng) => rng.Next(4) switch
    {
        0 => Pick(rng, ["-1", "-9223372036854775808", "99999999999999999999", "9223372036854775807", "1e3", "0x10", " 5", "5 ", "+5", "1.0", "", "abc", "٣", "５", "😀", "NaN", "∞", "0", "1", "%00"]),
        1 => rng.NextInt64(-1000, 1_000_000).ToString(CultureInfo.InvariantCulture),
        2 => RandomText(rng, rng.Next(1, 12)).Replace("\u0000", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal).Replace("\t", "", StringComparison.Ordinal),
        _ => rng.NextInt64().ToString(CultureInfo.InvariantCulture) + Pick(rng, ["", "0", "9"]),
    };

    private const string Header = "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status";

    private static string ValidCsv(Random rng, int rows) => Header + "\n" + string.Concat(Enumerable.Range(0, rows).Select(i =>
        $"2026-11-{1 + i % 28:00}T{i % 24:00}:00:00Z,openai,gpt-4o{(rng.Next(3) == 0 ? "-mini" : "")},{rng.Next(1, 5000)},{rng.Next(1, 900)},{rng.Next(10, 9000)},ok\n"));

    private static string ValidJsonl(Random rng, int rows) => string.Concat(Enumerable.Range(0, rows).Select(i =>
        "{\"timestamp\":\"2026-11-" + (1 + i % 28).ToString("00", CultureInfo.InvariantCulture) + "T10:00:00Z\",\"provider\":\"openai\",\"model\":\"gpt-4o\",\"prompt_tokens\":" +
        rng.Next(1, 5000) + ",\"completion_tokens\":" + rng.Next(1, 900) + ",\"latency_ms\":" + rng.Next(10, 9000) + ",\"status\":\"ok\"}\n"));

    /// <summary>One random upload: random bytes, a valid file in another encoding or cut short, huge or hostile fields, JSONL of
    /// random shape, an empty body, a body over the limit, each under a random (or wrong, or no) content type.</summary>
    private static (string Name, byte[] Body, string? ContentType) RandomUpload(Random rng)
    {
        string?[] types = ["text/csv", "application/jsonl", "application/x-ndjson", "application/json", "application/octet-stream", "text/csv; charset=utf-16",
            "text/plain", "multipart/form-data; boundary=x", "x/y;;;=", null];
        // Mostly a type the route accepts (others are refused 415 by routing, before the parser sees the body).
        var type = rng.Next(3) == 0 ? Pick(rng, types) : Pick(rng, types[..3].Append(null).ToArray());
        switch (rng.Next(9))
        {
            case 0:
                var noise = new byte[rng.Next(0, 64 * 1024)];
                rng.NextBytes(noise);
                return ("random bytes", noise, type);
            case 1:
                Encoding[] encodings = [Encoding.Unicode, Encoding.BigEndianUnicode, Encoding.UTF32, Encoding.Latin1, new UTF8Encoding(true)];
                var encoding = Pick(rng, encodings);
                var csv = ValidCsv(rng, rng.Next(1, 20)).Replace("openai", "openaï", StringComparison.Ordinal);
                return ($"CSV in {encoding.WebName} with its preamble", [.. encoding.GetPreamble(), .. encoding.GetBytes(csv)], Pick(rng, ["text/csv", null, type]));
            case 2:
                var whole = Encoding.UTF8.GetBytes(rng.Next(2) == 0 ? ValidCsv(rng, 30) : ValidJsonl(rng, 30));
                return ("a valid file cut short", whole[..rng.Next(1, whole.Length)], type);
            case 3:
                var huge = new string(Pick(rng, ['x', '"', ',', '\n', '漢']), rng.Next(10_000, 300_000));
                return ("a huge field", Encoding.UTF8.GetBytes($"{Header}\n2026-11-01T10:00:00Z,openai,{huge},1,1,1,ok\n"), Pick(rng, ["text/csv", type]));
            case 4:
                var values = Enumerable.Range(0, 6).Select(_ => Pick(rng, [.. Numbers, "NaN", "Infinity", "-", "", "\"\"", "\"1,2\"", "2026-13-45", "ok"]));
                return ("hostile values", Encoding.UTF8.GetBytes($"{Header}\n2026-11-01T10:00:00Z,openai,{string.Join(",", values)}\n"), Pick(rng, ["text/csv", type]));
            case 5:
                var lines = string.Concat(Enumerable.Range(0, rng.Next(1, 30)).Select(_ => RandomJson(rng, 3) + "\n"));
                return ("JSONL of random shape", Encoding.UTF8.GetBytes(lines), Pick(rng, ["application/jsonl", type]));
            case 6:
                var depth = rng.Next(50, 5000);
                return ("deeply nested JSONL", Encoding.UTF8.GetBytes(Repeat("{\"a\":", depth) + "1" + Repeat("}", depth) + "\n"), "application/jsonl");
            case 7:
                return ("an empty body", [], type);
            default:
                return ("a body over the limit", Encoding.UTF8.GetBytes(ValidCsv(rng, 1) + new string('#', LoggedServer.MaxUploadBytes + 1)), "text/csv");
        }
    }

    private static bool IsProblem(string text, int status)
    {
        try
        {
            var root = JsonDocument.Parse(text).RootElement;
            return root.TryGetProperty("status", out var s) && s.GetInt32() == status && root.TryGetProperty("title", out _);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];

    private static string Repeat(string text, int count) => new StringBuilder(text.Length * count).Insert(0, text, count).ToString();

    private static string Short(string text) => text.Length > 300 ? text[..300] + "…" : text;

    private sealed record FuzzFrame(byte[] Bytes, WebSocketMessageType Type, int Pieces);
}
