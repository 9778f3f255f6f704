using System.Text;
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

    /// <summary>The event's <c>data</c> as JSON, serialized as it is inside the envelope.</summary>
    public static string Data(ApexEvent evt)
    {
        var c = ApexJsonContext.Default;
        return evt switch
        {
            RunQueued e => JsonSerializer.Serialize(e.Data, c.RunQueuedData),
            RunStarted e => JsonSerializer.Serialize(e.Data, c.RunStartedData),
            AgentStarted e => JsonSerializer.Serialize(e.Data, c.AgentStartedData),
            AgentThinking e => JsonSerializer.Serialize(e.Data, c.AgentThinkingData),
            ToolExecuting e => JsonSerializer.Serialize(e.Data, c.ToolExecutingData),
            ToolCompleted e => JsonSerializer.Serialize(e.Data, c.ToolCompletedData),
            MessageDelta e => JsonSerializer.Serialize(e.Data, c.MessageDeltaData),
            AgentCompleted e => JsonSerializer.Serialize(e.Data, c.AgentCompletedData),
            AgentError e => JsonSerializer.Serialize(e.Data, c.AgentErrorData),
            RunCompleted e => JsonSerializer.Serialize(e.Data, c.RunCompletedData),
            RunFailed e => JsonSerializer.Serialize(e.Data, c.RunFailedData),
            RunCancelled e => JsonSerializer.Serialize(e.Data, c.RunCancelledData),
            ApprovalRequested e => JsonSerializer.Serialize(e.Data, c.ApprovalRequestedData),
            ApprovalResolved e => JsonSerializer.Serialize(e.Data, c.ApprovalResolvedData),
            _ => throw new ArgumentException($"{evt.Type} is not a stored event type.", nameof(evt)),
        };
    }

    /// <summary>The event as it was sent: its typed data under the envelope rebuilt from the row's columns.</summary>
    public static ApexEvent Read(short type, string data, long seq, string threadId, string? runId, string userId, string eventId, string? agent, long ticks)
    {
        var c = ApexJsonContext.Default;
        ApexEvent evt = type switch
        {
            1 => new RunQueued(JsonSerializer.Deserialize(data, c.RunQueuedData)!),
            2 => new RunStarted(JsonSerializer.Deserialize(data, c.RunStartedData)!),
            3 => new AgentStarted(JsonSerializer.Deserialize(data, c.AgentStartedData)!),
            4 => new AgentThinking(JsonSerializer.Deserialize(data, c.AgentThinkingData)!),
            5 => new ToolExecuting(JsonSerializer.Deserialize(data, c.ToolExecutingData)!),
            6 => new ToolCompleted(JsonSerializer.Deserialize(data, c.ToolCompletedData)!),
            7 => new MessageDelta(JsonSerializer.Deserialize(data, c.MessageDeltaData)!),
            8 => new AgentCompleted(JsonSerializer.Deserialize(data, c.AgentCompletedData)!),
            9 => new AgentError(JsonSerializer.Deserialize(data, c.AgentErrorData)!),
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
