using System.Text.Json;

namespace Apex.Server.Tools;

/// <summary>
/// Checks a JSON object (a tool's arguments, an agent's result) against the subset of JSON Schema
/// the server uses: typed properties (nested objects and array items too), required names, enums, numeric
/// bounds and the <c>date-time</c> format (an ISO 8601 date or date-time). Returns the first problem, or null.
/// </summary>
internal static class SchemaValidator
{
    public static string? Validate(JsonElement schema, JsonElement arguments)
    {
        if (arguments.ValueKind != JsonValueKind.Object) return "A JSON object is required.";
        var properties = schema.TryGetProperty("properties", out var p) ? p : default;
        if (schema.TryGetProperty("required", out var required))
        {
            foreach (var name in required.EnumerateArray())
                if (!arguments.TryGetProperty(name.GetString()!, out var value) || value.ValueKind == JsonValueKind.Null)
                    return $"'{name.GetString()}' is required.";
        }
        foreach (var argument in arguments.EnumerateObject())
        {
            if (properties.ValueKind != JsonValueKind.Object || !properties.TryGetProperty(argument.Name, out var property))
            {
                if (schema.TryGetProperty("additionalProperties", out var extra) && extra.ValueKind == JsonValueKind.False)
                    return $"'{argument.Name}' is not expected.";
                continue;
            }
            var problem = CheckValue(argument.Name, property, argument.Value);
            if (problem is not null) return problem;
        }
        return null;
    }

    private static string? CheckValue(string name, JsonElement property, JsonElement value)
    {
        if (value.ValueKind == JsonValueKind.Null) return null;
        if (property.TryGetProperty("type", out var typeElement) && typeElement.ValueKind == JsonValueKind.String)
        {
            var type = typeElement.GetString();
            var ok = type switch
            {
                "string" => value.ValueKind == JsonValueKind.String,
                "integer" => value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out _),
                "number" => value.ValueKind == JsonValueKind.Number,
                "boolean" => value.ValueKind is JsonValueKind.True or JsonValueKind.False,
                "array" => value.ValueKind == JsonValueKind.Array,
                "object" => value.ValueKind == JsonValueKind.Object,
                _ => true,
            };
            if (!ok) return $"'{name}' must be of type {type}.";
        }
        if (property.TryGetProperty("enum", out var allowed) && !allowed.EnumerateArray().Any(a => JsonElement.DeepEquals(a, value)))
            return $"'{name}' must be one of {allowed.GetRawText()}.";
        if (value.ValueKind == JsonValueKind.Object && property.TryGetProperty("properties", out _) && Validate(property, value) is { } inner)
            return $"'{name}': {inner}";
        if (value.ValueKind == JsonValueKind.Array && property.TryGetProperty("items", out var items))
        {
            var i = 0;
            foreach (var item in value.EnumerateArray())
                if (CheckValue($"{name}[{i++}]", items, item) is { } problem) return problem;
        }
        if (value.ValueKind == JsonValueKind.String && property.TryGetProperty("format", out var format) && format.ValueKind == JsonValueKind.String
            && format.GetString() == "date-time" && !TryParseDateTime(value.GetString()!, out _))
            return $"'{name}' must be an ISO 8601 date or date-time, such as 2026-11-01 or 2026-11-01T09:00:00Z.";
        if (value.ValueKind == JsonValueKind.Number)
        {
            var number = value.GetDouble();
            if (property.TryGetProperty("minimum", out var min) && number < min.GetDouble()) return $"'{name}' must be at least {min.GetRawText()}.";
            if (property.TryGetProperty("maximum", out var max) && number > max.GetDouble()) return $"'{name}' must be at most {max.GetRawText()}.";
        }
        return null;
    }

    /// <summary>An ISO 8601 date or date-time; one without an offset is UTC.</summary>
    public static bool TryParseDateTime(string text, out DateTimeOffset value)
    {
        string[] formats = ["yyyy-MM-dd", "yyyy-MM-ddTHH:mm", "yyyy-MM-ddTHH:mm:ss", "yyyy-MM-ddTHH:mm:ss.FFFFFFF", "yyyy-MM-ddTHH:mmzzz", "yyyy-MM-ddTHH:mm:sszzz",
            "yyyy-MM-ddTHH:mm:ss.FFFFFFFzzz", "yyyy-MM-ddTHH:mmZ", "yyyy-MM-ddTHH:mm:ssZ", "yyyy-MM-ddTHH:mm:ss.FFFFFFFZ"];
        return DateTimeOffset.TryParseExact(text, formats, System.Globalization.CultureInfo.InvariantCulture,
            System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal, out value);
    }
}
