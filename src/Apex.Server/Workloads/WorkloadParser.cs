using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Apex.Server.Workloads;

internal sealed record ParsedRow(int Line, DateTimeOffset Timestamp, string Provider, string Model, long PromptTokens, long CompletionTokens,
    double LatencyMs, string Status, double? Cost, string? PromptHash, string? Feature, string? Team);

internal sealed record RowError(int Line, string Reason);

internal sealed record ParseResult(IReadOnlyList<ParsedRow> Rows, IReadOnlyList<RowError> Errors, string? FileError);

/// <summary>
/// Reads CSV (with a header row) or JSONL, one model call per row. A problem with the whole file
/// (encoding, missing columns) is a file error; a problem with one row rejects that row with its line.
/// </summary>
internal static class WorkloadParser
{
    public static readonly ImmutableArray<string> Required = ["timestamp", "provider", "model", "prompt_tokens", "completion_tokens", "latency_ms"];

    public static ParseResult Parse(byte[] content, string format, int maxRows)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(content);
        }
        catch (DecoderFallbackException ex)
        {
            return new([], [], $"The file is not valid UTF-8 (bad byte at offset {ex.Index}).");
        }
        if (text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
        if (string.IsNullOrWhiteSpace(text)) return new([], [], "The file is empty.");
        var lines = text.Split('\n');
        return format == "jsonl" ? ParseJsonl(lines, maxRows) : ParseCsv(lines, maxRows);
    }

    public static string DetectFormat(string? contentType, byte[] content)
    {
        if (contentType?.Contains("json", StringComparison.OrdinalIgnoreCase) == true) return "jsonl";
        if (contentType?.Contains("csv", StringComparison.OrdinalIgnoreCase) == true) return "csv";
        var first = content.SkipWhile(b => b is (byte)' ' or (byte)'\n' or (byte)'\r' or (byte)'\t' or 0xEF or 0xBB or 0xBF).FirstOrDefault();
        return first == (byte)'{' ? "jsonl" : "csv";
    }

    private static ParseResult ParseCsv(string[] lines, int maxRows)
    {
        var header = SplitCsv(lines[0].TrimEnd('\r')).Select(h => h.Trim().ToLowerInvariant()).ToList();
        var missing = Required.Where(r => !header.Contains(r)).ToList();
        if (!header.Contains("status") && !header.Contains("error")) missing.Add("status (or error)");
        if (missing.Count > 0) return new([], [], $"Missing required column(s): {string.Join(", ", missing)}. Found: {string.Join(", ", header)}.");

        var rows = new List<ParsedRow>();
        var errors = new List<RowError>();
        for (var i = 1; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            if (line.Length == 0) continue;
            if (rows.Count + errors.Count >= maxRows) return new([], [], $"The file has more than {maxRows} rows.");
            var cells = SplitCsv(line);
            if (cells.Count != header.Count)
            {
                errors.Add(new(i + 1, $"Expected {header.Count} fields, found {cells.Count}."));
                continue;
            }
            var values = header.Zip(cells).ToDictionary(p => p.First, p => p.Second.Trim());
            AddRow(i + 1, name => values.TryGetValue(name, out var v) && v.Length > 0 ? v : null, rows, errors);
        }
        return new(rows, errors, null);
    }

    private static ParseResult ParseJsonl(string[] lines, int maxRows)
    {
        var rows = new List<ParsedRow>();
        var errors = new List<RowError>();
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0) continue;
            if (rows.Count + errors.Count >= maxRows) return new([], [], $"The file has more than {maxRows} rows.");
            JsonElement row;
            try
            {
                using var document = JsonDocument.Parse(line);
                row = document.RootElement.Clone();
            }
            catch (JsonException ex)
            {
                errors.Add(new(i + 1, $"Not valid JSON: {ex.Message}"));
                continue;
            }
            if (row.ValueKind != JsonValueKind.Object)
            {
                errors.Add(new(i + 1, "Each line must be a JSON object."));
                continue;
            }
            AddRow(i + 1, name => row.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
                ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText() : null, rows, errors);
        }
        if (rows.Count == 0 && errors.Count > 0 && errors.All(e => e.Reason.StartsWith("Not valid JSON", StringComparison.Ordinal)))
            return new([], errors, "No line of the file is valid JSON.");
        return new(rows, errors, null);
    }

    private static void AddRow(int line, Func<string, string?> get, List<ParsedRow> rows, List<RowError> errors)
    {
        var problems = new List<string>();
        foreach (var name in Required) if (get(name) is null) problems.Add($"{name} is missing");
        if (problems.Count > 0)
        {
            errors.Add(new(line, string.Join("; ", problems) + "."));
            return;
        }
        if (!DateTimeOffset.TryParse(get("timestamp"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var ts)) problems.Add($"timestamp '{get("timestamp")}' is not a date");
        var prompt = Integer("prompt_tokens");
        var completion = Integer("completion_tokens");
        var latency = Number("latency_ms");
        double? cost = get("cost") is null ? null : Number("cost");
        if (problems.Count > 0)
        {
            errors.Add(new(line, string.Join("; ", problems) + "."));
            return;
        }
        var error = get("error");
        var status = get("status") ?? (error is null ? "ok" : "error");
        status = status.ToLowerInvariant() switch { "ok" or "success" or "200" => "ok", var s => s };
        rows.Add(new ParsedRow(line, ts.ToUniversalTime(), get("provider")!, get("model")!, prompt, completion, latency, status, cost,
            get("prompt_hash"), get("feature"), get("team")));

        long Integer(string name)
        {
            var raw = get(name);
            if (long.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value >= 0) return value;
            problems.Add($"{name} '{raw}' is not a non-negative integer");
            return 0;
        }

        double Number(string name)
        {
            var raw = get(name);
            if (double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= 0 && double.IsFinite(value)) return value;
            problems.Add($"{name} '{raw}' is not a non-negative number");
            return 0;
        }
    }

    /// <summary>RFC 4180 fields: commas inside quotes, doubled quotes for a quote.</summary>
    private static List<string> SplitCsv(string line)
    {
        var fields = new List<string>();
        var current = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (quoted)
            {
                if (c == '"' && i + 1 < line.Length && line[i + 1] == '"') { current.Append('"'); i++; }
                else if (c == '"') quoted = false;
                else current.Append(c);
            }
            else if (c == '"') quoted = true;
            else if (c == ',') { fields.Add(current.ToString()); current.Clear(); }
            else current.Append(c);
        }
        fields.Add(current.ToString());
        return fields;
    }
}
