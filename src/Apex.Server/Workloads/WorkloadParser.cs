using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Apex.Server.Storage;

namespace Apex.Server.Workloads;

internal sealed record ParsedRow(int Line, DateTimeOffset Timestamp, string Provider, string Model, long PromptTokens, long CompletionTokens,
    double LatencyMs, string Status, double? Cost, string? PromptHash, string? Feature, string? Team);

internal sealed record RowError(int Line, string Reason);

/// <summary>What one line of an upload is.</summary>
internal abstract record LineOutcome
{
    private LineOutcome() { }

    /// <summary>A blank line or the CSV header.</summary>
    public sealed record Skipped : LineOutcome;

    public sealed record Row(ParsedRow Value) : LineOutcome;

    public sealed record Bad(RowError Error) : LineOutcome;

    /// <summary>A problem with the whole file (missing columns, too many rows): nothing of it is imported.</summary>
    public sealed record FileError(string Reason) : LineOutcome;
}

/// <summary>
/// Reads CSV (with a header row) or JSONL, one model call per row, a line at a time: it keeps the header and counts, never
/// the rows. A problem with the whole file (encoding, missing columns) is a file error; a problem with one row rejects
/// that row with its line. Values outside <see cref="WorkloadBounds"/> reject their row.
/// </summary>
internal sealed class WorkloadParser(string? contentType, int maxRows)
{
    public static readonly ImmutableArray<string> Required = ["timestamp", "provider", "model", "prompt_tokens", "completion_tokens", "latency_ms"];

    private List<string>? _header;
    private int _rows, _errors, _jsonErrors;

    /// <summary><c>csv</c> or <c>jsonl</c>: from the content type, else from the first non-blank line (a <c>{</c> is JSONL).</summary>
    public string Format { get; private set; } = FormatOf(contentType) ?? "csv";

    private bool _started;

    public LineOutcome Parse(int number, string line)
    {
        if (string.IsNullOrWhiteSpace(line)) return new LineOutcome.Skipped();
        if (!_started)
        {
            _started = true;
            Format = FormatOf(contentType) ?? (line.TrimStart().StartsWith('{') ? "jsonl" : "csv");
            if (Format == "csv") return Header(line);
        }
        if (_rows + _errors >= maxRows) return new LineOutcome.FileError($"The file has more than {maxRows} rows.");
        var outcome = Format == "jsonl" ? Jsonl(number, line.Trim()) : Csv(number, line);
        if (outcome is LineOutcome.Row) _rows++;
        else if (outcome is LineOutcome.Bad) _errors++;
        return outcome;
    }

    /// <summary>The file error that only the end of the file shows (empty, no valid JSON line), or null.</summary>
    public string? Finish() =>
        !_started ? "The file is empty."
        : Format == "jsonl" && _rows == 0 && _errors > 0 && _jsonErrors == _errors ? "No line of the file is valid JSON."
        : null;

    private static string? FormatOf(string? contentType) =>
        contentType?.Contains("json", StringComparison.OrdinalIgnoreCase) == true ? "jsonl"
        : contentType?.Contains("csv", StringComparison.OrdinalIgnoreCase) == true ? "csv"
        : null;

    private LineOutcome Header(string line)
    {
        var header = SplitCsv(line).Select(h => h.Trim().ToLowerInvariant()).ToList();
        var missing = Required.Where(r => !header.Contains(r)).ToList();
        if (!header.Contains("status") && !header.Contains("error")) missing.Add("status (or error)");
        if (missing.Count > 0) return new LineOutcome.FileError($"Missing required column(s): {string.Join(", ", missing)}. Found: {string.Join(", ", header)}.");
        _header = header;
        return new LineOutcome.Skipped();
    }

    private LineOutcome Csv(int number, string line)
    {
        var header = _header!;
        var cells = SplitCsv(line);
        if (cells.Count != header.Count) return new LineOutcome.Bad(new(number, $"Expected {header.Count} fields, found {cells.Count}."));
        var values = new Dictionary<string, string>(header.Count, StringComparer.Ordinal);
        for (var i = 0; i < header.Count; i++) values[header[i]] = cells[i].Trim();
        return Row(number, name => values.TryGetValue(name, out var v) && v.Length > 0 ? v : null);
    }

    private LineOutcome Jsonl(int number, string line)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(line);
        }
        catch (JsonException ex)
        {
            _jsonErrors++;
            return new LineOutcome.Bad(new(number, $"Not valid JSON: {ex.Message}"));
        }
        using (document)
        {
            var row = document.RootElement;
            if (row.ValueKind != JsonValueKind.Object) return new LineOutcome.Bad(new(number, "Each line must be a JSON object."));
            return Row(number, name => row.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
                ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText() : null);
        }
    }

    private static LineOutcome Row(int line, Func<string, string?> get)
    {
        var problems = new List<string>();
        foreach (var name in Required) if (get(name) is null) problems.Add($"{name} is missing");
        if (problems.Count > 0) return new LineOutcome.Bad(new(line, string.Join("; ", problems) + "."));
        if (!DateTimeOffset.TryParse(get("timestamp"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var ts)) problems.Add($"timestamp '{get("timestamp")}' is not a date");
        var prompt = Integer("prompt_tokens");
        var completion = Integer("completion_tokens");
        var latency = Number("latency_ms", WorkloadBounds.MaxLatencyMs);
        double? cost = get("cost") is null ? null : Number("cost", WorkloadBounds.MaxCostUsd);
        if (problems.Count > 0) return new LineOutcome.Bad(new(line, string.Join("; ", problems) + "."));
        var error = get("error");
        var status = get("status") ?? (error is null ? "ok" : "error");
        status = status.ToLowerInvariant() switch { "ok" or "success" or "200" => "ok", var s => s };
        return new LineOutcome.Row(new ParsedRow(line, ts.ToUniversalTime(), get("provider")!, get("model")!, prompt, completion, latency, status, cost,
            get("prompt_hash"), get("feature"), get("team")));

        long Integer(string name)
        {
            var raw = get(name);
            if (!long.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) || value < 0)
                problems.Add($"{name} '{raw}' is not a non-negative integer");
            else if (value > WorkloadBounds.MaxTokens)
                problems.Add($"{name} '{raw}' is above the limit of {WorkloadBounds.MaxTokens.ToString(CultureInfo.InvariantCulture)}");
            else return value;
            return 0;
        }

        double Number(string name, double max)
        {
            var raw = get(name);
            if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0 || !double.IsFinite(value))
                problems.Add($"{name} '{raw}' is not a non-negative number");
            else if (value > max)
                problems.Add($"{name} '{raw}' is above the limit of {max.ToString("0", CultureInfo.InvariantCulture)}");
            else return value;
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
