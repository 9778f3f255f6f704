using System.Globalization;
using System.Text.Json;

namespace Apex.Server.Agents;

/// <summary>Forgiving reads of model and tool JSON, which may lack any field.</summary>
internal static class JsonRead
{
    public static JsonElement? Get(this JsonElement element, string name) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public static JsonElement? Get(this JsonElement? element, string name) => element is { } e ? e.Get(name) : null;

    public static string? Text(this JsonElement element, string name) => ((JsonElement?)element).Text(name);

    public static double Number(this JsonElement element, string name, double fallback = 0) => ((JsonElement?)element).Number(name, fallback);

    public static IEnumerable<JsonElement> Items(this JsonElement element, string name) => ((JsonElement?)element).Items(name);

    public static double Number(this JsonElement? element, string name, double fallback = 0) =>
        element.Get(name) is { ValueKind: JsonValueKind.Number } n ? n.GetDouble() : fallback;

    public static string? Text(this JsonElement? element, string name) =>
        element.Get(name) is { ValueKind: JsonValueKind.String } s ? s.GetString() : null;

    public static IEnumerable<JsonElement> Items(this JsonElement? element, string name) =>
        element.Get(name) is { ValueKind: JsonValueKind.Array } a ? a.EnumerateArray() : [];

    public static string Money(double value) => value.ToString(value >= 100 ? "N0" : "N2", CultureInfo.InvariantCulture);

    public static string Num(double value, string format = "N0") => value.ToString(format, CultureInfo.InvariantCulture);
}
