using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Apex.Server.Agents;

/// <summary>
/// The built-in model's rules for an agent it has no rules of its own for (a user's agent): it calls each offered tool whose
/// required arguments it can fill from the tool's JSON schema (a default, an enum's first value, or a simple type: a string
/// gets the request, a number its minimum or 1, a boolean false), then answers with what the tools returned and, when the
/// agent has a result schema, fills it from them. It follows no instructions: a real model does; this one makes a custom
/// agent run with no network, in tests and benchmarks.
/// </summary>
internal static class BuiltInGenericAgent
{
    /// <summary>How much of each tool's result the answer quotes.</summary>
    public const int ExcerptChars = 120;

    public static List<(string Tool, Dictionary<string, object?> Arguments)> PlanToolCalls(IEnumerable<(string Name, JsonElement Schema)> offered, string request)
    {
        var calls = new List<(string, Dictionary<string, object?>)>();
        foreach (var (name, schema) in offered)
            if (Arguments(schema, request) is { } arguments) calls.Add((name, arguments));
        return calls;
    }

    /// <summary>The required arguments of a tool from its schema, or null when one of them cannot be filled.</summary>
    public static Dictionary<string, object?>? Arguments(JsonElement schema, string request)
    {
        var arguments = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (schema.ValueKind != JsonValueKind.Object || !schema.TryGetProperty("required", out var required) || required.ValueKind != JsonValueKind.Array) return arguments;
        var properties = schema.TryGetProperty("properties", out var p) && p.ValueKind == JsonValueKind.Object ? p : default;
        foreach (var name in required.EnumerateArray().Select(r => r.GetString()).OfType<string>())
        {
            if (properties.ValueKind != JsonValueKind.Object || !properties.TryGetProperty(name, out var property)) return null;
            if (Argument(property, request) is not { } value) return null;
            arguments[name] = value;
        }
        return arguments;
    }

    private static JsonElement? Argument(JsonElement property, string request)
    {
        if (property.TryGetProperty("default", out var fallback)) return fallback.Clone();
        if (property.TryGetProperty("enum", out var values) && values.ValueKind == JsonValueKind.Array && values.GetArrayLength() > 0) return values[0].Clone();
        var type = property.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        return type switch
        {
            "string" when property.TryGetProperty("format", out var f) && f.GetString() is "date-time" =>
                Element(w => w.WriteStringValue(DateTimeOffset.UnixEpoch.ToString("O", CultureInfo.InvariantCulture))),
            "string" => Element(w => w.WriteStringValue(Limit(request, property))),
            "number" or "integer" => Element(w => w.WriteNumberValue(property.TryGetProperty("minimum", out var min) && min.TryGetDouble(out var m) ? Math.Ceiling(m) : 1)),
            "boolean" => Element(w => w.WriteBooleanValue(false)),
            "object" => Arguments(property, request) is { } inner ? Element(w =>
            {
                w.WriteStartObject();
                foreach (var (key, value) in inner)
                {
                    w.WritePropertyName(key);
                    ((JsonElement)value!).WriteTo(w);
                }
                w.WriteEndObject();
            }) : null,
            "array" when !property.TryGetProperty("minItems", out var n) || n.GetInt32() == 0 => Element(w =>
            {
                w.WriteStartArray();
                w.WriteEndArray();
            }),
            _ => null,
        };
    }

    private static JsonElement Element(Action<Utf8JsonWriter> write) => JsonWritten.Element(write);

    private static string Limit(string request, JsonElement property)
    {
        var text = request.Length > 0 ? request : "hello";
        return property.TryGetProperty("maxLength", out var max) && max.TryGetInt32(out var n) && text.Length > n ? text[..n] : text;
    }

    /// <summary>The answer: what each tool returned (an excerpt), or that there was nothing to call.</summary>
    public static string Answer(IReadOnlyDictionary<string, JsonElement> results, int offered)
    {
        if (results.Count == 0)
            return offered == 0 ? "This agent has no tools, and the built-in model only reports what tools return: configure a real model (Apex:Llm) for it to follow its instructions."
                : $"None of the {offered} tools offered could be called: the built-in model fills only required arguments with a default, an enum or a simple type.";
        var answer = new StringBuilder($"Called {results.Count} tool{(results.Count == 1 ? "" : "s")}.");
        foreach (var (tool, result) in results) answer.Append($"\n- {tool}: {Excerpt(result)}");
        return answer.ToString();
    }

    /// <summary>A result for the agent's schema: a field a tool result has is copied, the others are filled from the answer or by type.</summary>
    public static string Result(JsonElement schema, IReadOnlyDictionary<string, JsonElement> results, string answer) =>
        JsonWritten.Text(writer => WriteValue(writer, schema, null, results, answer));

    private static void WriteValue(Utf8JsonWriter writer, JsonElement schema, string? name, IReadOnlyDictionary<string, JsonElement> results, string answer)
    {
        var type = schema.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : "string";
        if (name is not null && Found(name, type, results) is { } found)
        {
            found.WriteTo(writer);
            return;
        }
        if (schema.TryGetProperty("default", out var fallback)) fallback.WriteTo(writer);
        else if (schema.TryGetProperty("enum", out var values) && values.ValueKind == JsonValueKind.Array && values.GetArrayLength() > 0) values[0].WriteTo(writer);
        else
        {
            switch (type)
            {
                case "object":
                    writer.WriteStartObject();
                    if (schema.TryGetProperty("properties", out var properties) && properties.ValueKind == JsonValueKind.Object)
                        foreach (var property in properties.EnumerateObject())
                        {
                            writer.WritePropertyName(property.Name);
                            WriteValue(writer, property.Value, property.Name, results, answer);
                        }
                    writer.WriteEndObject();
                    break;
                case "array":
                    writer.WriteStartArray();
                    if (schema.TryGetProperty("items", out var items) && items.TryGetProperty("type", out var it) && it.GetString() == "string")
                        foreach (var result in results.Values) writer.WriteStringValue(Excerpt(result));
                    writer.WriteEndArray();
                    break;
                case "number" or "integer":
                    writer.WriteNumberValue(schema.TryGetProperty("minimum", out var min) && min.TryGetDouble(out var m) ? Math.Ceiling(m) : 0);
                    break;
                case "boolean":
                    writer.WriteBooleanValue(false);
                    break;
                case "null":
                    writer.WriteNullValue();
                    break;
                default:
                    writer.WriteStringValue(answer);
                    break;
            }
        }
    }

    /// <summary>A top-level field of that name and JSON type in a tool's result (or in an MCP tool's structured content).</summary>
    private static JsonElement? Found(string name, string? type, IReadOnlyDictionary<string, JsonElement> results)
    {
        foreach (var result in results.Values)
        {
            foreach (var scope in new[] { result, result.ValueKind == JsonValueKind.Object && result.TryGetProperty("structured", out var s) ? s : default })
            {
                if (scope.ValueKind != JsonValueKind.Object || !scope.TryGetProperty(name, out var value)) continue;
                var matches = type switch
                {
                    "string" => value.ValueKind == JsonValueKind.String,
                    "number" => value.ValueKind == JsonValueKind.Number,
                    "integer" => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _),
                    "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
                    "array" => value.ValueKind == JsonValueKind.Array,
                    "object" => value.ValueKind == JsonValueKind.Object,
                    _ => false,
                };
                if (matches) return value;
            }
        }
        return null;
    }

    /// <summary>What a tool returned, shortened: an MCP tool's text, a failure's message, else the JSON.</summary>
    private static string Excerpt(JsonElement result)
    {
        var text = result.ValueKind != JsonValueKind.Object ? result.GetRawText()
            : AgentResults.ToolError(result) is { } error ? $"failed ({error.Status}): {error.Error}"
            : result.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()!
            : result.GetRawText();
        text = text.ReplaceLineEndings(" ");
        return text.Length <= ExcerptChars ? text : text[..ExcerptChars] + "…";
    }

    /// <summary>
    /// Streams in pieces of at most four characters (ending at a space when there is one): a model's tokens, by the same
    /// four-characters-a-token estimate as the built-in model's usage, so the number of deltas is about the tokens it reports.
    /// </summary>
    public static IEnumerable<string> Tokens(string text)
    {
        var start = 0;
        while (start < text.Length)
        {
            var end = Math.Min(start + 4, text.Length);
            var space = text.IndexOfAny([' ', '\n'], start, end - start);
            if (space >= 0) end = space + 1;
            yield return text[start..end];
            start = end;
        }
    }
}
