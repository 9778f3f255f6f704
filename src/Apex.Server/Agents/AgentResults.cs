using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Apex.Client;

namespace Apex.Server.Agents;

/// <summary>
/// Typed reads of tool and agent results. Results come back as JSON (from a tool, or from a real model checked only
/// against a schema), so a result that is missing, failed or of another shape reads as null instead of throwing.
/// </summary>
internal static class AgentResults
{
    /// <summary>A tool's result when the tool was called and succeeded.</summary>
    public static T? Tool<T>(IReadOnlyDictionary<string, JsonElement> results, string tool, JsonTypeInfo<T> type) where T : class =>
        results.TryGetValue(tool, out var result) && ToolError(result) is null ? Read(result, type) : null;

    /// <summary>An agent's structured result, when it produced one of the expected shape.</summary>
    public static T? Agent<T>(IReadOnlyDictionary<string, JsonElement> results, string agent, JsonTypeInfo<T> type) where T : class =>
        results.TryGetValue(agent, out var result) ? Read(result, type) : null;

    /// <summary>What a failed tool call told the model, or null for a result that is not an error.</summary>
    public static ToolErrorResult? ToolError(JsonElement result) =>
        result.ValueKind == JsonValueKind.Object && result.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String
            ? new ToolErrorResult(result.TryGetProperty("status", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString()! : "error", error.GetString()!)
            : null;

    public static T? Read<T>(JsonElement value, JsonTypeInfo<T> type) where T : class
    {
        if (value.ValueKind != JsonValueKind.Object) return null;
        try
        {
            return value.Deserialize(type);
        }
        catch (JsonException)
        {
            return null;
        }
    }
}

/// <summary>JSON written with a <see cref="Utf8JsonWriter"/>, as an element or as text (compact: no indentation).</summary>
internal static class JsonWritten
{
    public static JsonElement Element(Action<Utf8JsonWriter> write)
    {
        using var document = JsonDocument.Parse(Bytes(write));
        return document.RootElement.Clone();
    }

    public static string Text(Action<Utf8JsonWriter> write) => System.Text.Encoding.UTF8.GetString(Bytes(write));

    private static byte[] Bytes(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer)) write(writer);
        return buffer.ToArray();
    }
}

/// <summary>How figures are written in answers.</summary>
internal static class Figures
{
    public static string Money(double value) => value.ToString(value >= 100 ? "N0" : "N2", CultureInfo.InvariantCulture);
}
