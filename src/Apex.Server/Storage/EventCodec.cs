using System.Buffers;
using System.IO.Compression;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Apex.Client;

namespace Apex.Server.Storage;

/// <summary>
/// How an event is stored: its columns (16-byte ids, a type code, the agent, the time in ticks) and its <c>data</c> alone.
/// The envelope is rebuilt on read from the same values it was sent with live, so a replay serializes to the same bytes.
/// </summary>
/// <remarks>
/// The user is not stored with each event: it is the thread's owner, and every read is scoped by it through the thread row.
/// Ids are kept as the 16 bytes of the UUID when the id is one in its canonical (lowercase) text; any other id is stored as a
/// zero byte and its UTF-8 text, so every id round-trips exactly. Never renumber a type code: stored rows carry them.
/// </remarks>
internal static class EventCodec
{
    private const byte TextId = 0;

    /// <summary>
    /// The one serializer context with options for stored data only: characters the wire escapes for HTML safety (an
    /// apostrophe is six bytes there) are kept as they are. The envelope is serialized again from typed data on read,
    /// with the wire's options, so what a client receives does not change.
    /// </summary>
    private static readonly ApexJsonContext Stored = new(new JsonSerializerOptions(ApexJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = null,
    });

    public static byte[] Id(string id)
    {
        if (id.Length == 36 && Guid.TryParseExact(id, "D", out var guid) && string.Equals(guid.ToString("D"), id, StringComparison.Ordinal))
        {
            var bytes = new byte[16];
            guid.TryWriteBytes(bytes, bigEndian: true, out _);
            return bytes;
        }
        var text = new byte[Encoding.UTF8.GetByteCount(id) + 1];
        text[0] = TextId;
        Encoding.UTF8.GetBytes(id, text.AsSpan(1));
        return text;
    }

    public static byte[]? IdOrNull(string? id) => id is null ? null : Id(id);

    public static string Id(byte[] bytes) =>
        bytes.Length == 16 ? new Guid(bytes, bigEndian: true).ToString("D") : Encoding.UTF8.GetString(bytes.AsSpan(1));

    /// <summary>Ticks (100 ns) since the Unix epoch: the whole precision of the envelope's timestamp.</summary>
    public static long Ticks(DateTimeOffset at) => at.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks;

    public static DateTimeOffset Time(long ticks) => new(ticks + DateTimeOffset.UnixEpoch.UtcTicks, TimeSpan.Zero);

    public static short TypeCode(string type) => type switch
    {
        EventTypes.RunQueued => 1,
        EventTypes.RunStarted => 2,
        EventTypes.AgentStarted => 3,
        EventTypes.AgentThinking => 4,
        EventTypes.ToolExecuting => 5,
        EventTypes.ToolCompleted => 6,
        EventTypes.MessageDelta => 7,
        EventTypes.AgentCompleted => 8,
        EventTypes.AgentError => 9,
        EventTypes.RunCompleted => 10,
        EventTypes.RunFailed => 11,
        EventTypes.RunCancelled => 12,
        EventTypes.ApprovalRequested => 13,
        EventTypes.ApprovalResolved => 14,
        _ => throw new ArgumentException($"{type} is not a stored event type.", nameof(type)),
    };

    /// <summary>Data this long or longer is stored compressed (Brotli), when that makes it shorter.</summary>
    public const int CompressFrom = 128;

    /// <summary>The first byte of compressed data, followed by the JSON's length (7-bit groups) and the Brotli stream; JSON starts with '{'.</summary>
    private const byte Compressed = 1;

    /// <summary>
    /// The event's <c>data</c> as stored: its UTF-8 JSON without what the row's columns already hold (an agent event's own
    /// agent), compressed from <see cref="CompressFrom"/> bytes (Brotli quality 2: a third of quality 4's CPU for the half KB
    /// of a tool's result, about 15 µs, for 8% more bytes: a run's payloads shrink to 54% instead of 50%). Rows written before
    /// hold the JSON as text; every reader takes both.
    /// </summary>
    public static byte[] Data(ApexEvent evt)
    {
        var json = Json(evt);
        if (json.Length < CompressFrom) return json;
        var rented = ArrayPool<byte>.Shared.Rent(json.Length + 8);
        try
        {
            var header = 2; // the marker and the length's last 7-bit group
            for (var n = (uint)json.Length; n >= 0x80; n >>= 7) header++;
            if (!BrotliEncoder.TryCompress(json, rented.AsSpan(header), out var written, quality: 2, window: 16) || header + written >= json.Length) return json;
            rented[0] = Compressed;
            var at = 1;
            for (var n = (uint)json.Length; ; n >>= 7)
            {
                if (n < 0x80) { rented[at] = (byte)n; break; }
                rented[at++] = (byte)(n | 0x80);
            }
            return rented.AsSpan(0, header + written).ToArray();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>The stored data's JSON: text (rows written before), UTF-8 JSON, or compressed UTF-8 JSON.</summary>
    public static byte[] Json(object stored)
    {
        if (stored is string text) return Encoding.UTF8.GetBytes(text);
        var bytes = (byte[])stored;
        if (bytes.Length == 0 || bytes[0] != Compressed) return bytes;
        int length = 0, at = 1;
        for (var shift = 0; ; shift += 7)
        {
            var b = bytes[at++];
            length |= (b & 0x7F) << shift;
            if (b < 0x80) break;
        }
        var json = new byte[length];
        if (!BrotliDecoder.TryDecompress(bytes.AsSpan(at), json, out var written) || written != length)
            throw new InvalidDataException("A stored event's compressed data does not decompress to its recorded length.");
        return json;
    }

    private static byte[] Json(ApexEvent evt)
    {
        var c = Stored;
        return evt switch
        {
            RunQueued e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.RunQueuedData),
            RunStarted e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.RunStartedData),
            AgentStarted e => JsonSerializer.SerializeToUtf8Bytes(e.Data with { Agent = ColumnHolds(e.Data.Agent, e.AgentName) }, c.AgentStartedData),
            AgentThinking e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.AgentThinkingData),
            ToolExecuting e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.ToolExecutingData),
            ToolCompleted e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.ToolCompletedData),
            MessageDelta e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.MessageDeltaData),
            AgentCompleted e => JsonSerializer.SerializeToUtf8Bytes(e.Data with { Agent = ColumnHolds(e.Data.Agent, e.AgentName) }, c.AgentCompletedData),
            AgentError e => JsonSerializer.SerializeToUtf8Bytes(e.Data with { Agent = ColumnHolds(e.Data.Agent, e.AgentName) }, c.AgentErrorData),
            RunCompleted e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.RunCompletedData),
            RunFailed e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.RunFailedData),
            RunCancelled e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.RunCancelledData),
            ApprovalRequested e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.ApprovalRequestedData),
            ApprovalResolved e => JsonSerializer.SerializeToUtf8Bytes(e.Data, c.ApprovalResolvedData),
            _ => throw new ArgumentException($"{evt.Type} is not a stored event type.", nameof(evt)),
        };
    }

    /// <summary>Null (left out of the stored JSON) when the agent column holds the same name; read back from the column.</summary>
    private static string ColumnHolds(string agent, string? column) => string.Equals(agent, column, StringComparison.Ordinal) ? null! : agent;

    /// <summary>The result an <c>agent_completed</c> row's data holds if the agent ended ok (one outside its schema is not its result).</summary>
    public static JsonElement? AgentResult(object data) =>
        JsonSerializer.Deserialize(Json(data), Stored.AgentCompletedData) is { Status: "ok", Result: { } result } ? result : null;

    /// <summary>The event as it was sent: its typed data under the envelope rebuilt from the row's columns.</summary>
    public static ApexEvent Read(short type, object stored, long seq, string threadId, string? runId, string userId, string eventId, string? agent, long ticks)
    {
        var c = Stored;
        var data = Json(stored);
        ApexEvent evt = type switch
        {
            1 => new RunQueued(JsonSerializer.Deserialize(data, c.RunQueuedData)!),
            2 => new RunStarted(JsonSerializer.Deserialize(data, c.RunStartedData)!),
            3 => new AgentStarted(JsonSerializer.Deserialize(data, c.AgentStartedData)! is var started && started.Agent is null ? started with { Agent = agent! } : started),
            4 => new AgentThinking(JsonSerializer.Deserialize(data, c.AgentThinkingData)!),
            5 => new ToolExecuting(JsonSerializer.Deserialize(data, c.ToolExecutingData)!),
            6 => new ToolCompleted(JsonSerializer.Deserialize(data, c.ToolCompletedData)!),
            7 => new MessageDelta(JsonSerializer.Deserialize(data, c.MessageDeltaData)!),
            8 => new AgentCompleted(JsonSerializer.Deserialize(data, c.AgentCompletedData)! is var completed && completed.Agent is null ? completed with { Agent = agent! } : completed),
            9 => new AgentError(JsonSerializer.Deserialize(data, c.AgentErrorData)! is var error && error.Agent is null ? error with { Agent = agent! } : error),
            10 => new RunCompleted(JsonSerializer.Deserialize(data, c.RunCompletedData)!),
            11 => new RunFailed(JsonSerializer.Deserialize(data, c.RunFailedData)!),
            12 => new RunCancelled(JsonSerializer.Deserialize(data, c.RunCancelledData)!),
            13 => new ApprovalRequested(JsonSerializer.Deserialize(data, c.ApprovalRequestedData)!),
            14 => new ApprovalResolved(JsonSerializer.Deserialize(data, c.ApprovalResolvedData)!),
            _ => throw new InvalidDataException($"A stored event has the unknown type code {type}."),
        };
        return evt with { EventId = eventId, Seq = seq, ThreadId = threadId, RunId = runId, UserId = userId, AgentName = agent, Timestamp = Time(ticks) };
    }
}
