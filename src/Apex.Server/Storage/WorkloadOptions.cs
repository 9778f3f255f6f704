using System.ComponentModel.DataAnnotations;

namespace Apex.Server.Storage;

/// <summary>Upload limits and the price table used when a row carries no cost (section <c>Apex:Workloads</c>).</summary>
internal sealed class WorkloadOptions
{
    public const string Section = "Apex:Workloads";

    [Range(1024, 1024L * 1024 * 1024)] public long MaxUploadBytes { get; set; } = 20 * 1024 * 1024;
    [Range(1, 5_000_000)] public int MaxRows { get; set; } = 200_000;

    /// <summary>Rows a user may have stored in all; an upload that would pass it is refused whole. At most 5,000,000, so that sums of bounded values cannot overflow.</summary>
    [Range(1, 5_000_000)] public long MaxRowsPerUser { get; set; } = 1_000_000;

    /// <summary>Rows per write transaction of an upload: between two chunks, other users' writes get the (single SQLite) writer.</summary>
    [Range(100, 50_000)] public int UploadChunkRows { get; set; } = 250;

    /// <summary>
    /// How long an upload holds its user's upload slot without writing a chunk. Renewed with every chunk; an upload whose
    /// node died frees the slot when it runs out, and the next upload of that user clears its rows.
    /// </summary>
    [Range(10, 3600)] public int UploadLeaseSeconds { get; set; } = 120;

    /// <summary>USD per million tokens, by model name (case-insensitive). Configuration adds to or overrides these.</summary>
    public Dictionary<string, ModelPrice> Prices { get; set; } = new(StringComparer.OrdinalIgnoreCase)
    {
        ["gpt-4o"] = new() { Input = 2.50, Output = 10.00 },
        ["gpt-4o-mini"] = new() { Input = 0.15, Output = 0.60 },
        ["gpt-4.1"] = new() { Input = 2.00, Output = 8.00 },
        ["gpt-4.1-mini"] = new() { Input = 0.40, Output = 1.60 },
        ["claude-3-5-sonnet"] = new() { Input = 3.00, Output = 15.00 },
        ["claude-3-5-haiku"] = new() { Input = 0.80, Output = 4.00 },
        ["llama-3.1-70b"] = new() { Input = 0.59, Output = 0.79 },
        ["llama-3.1-8b"] = new() { Input = 0.05, Output = 0.08 },
    };

    public double? CostOf(string model, long promptTokens, long completionTokens) =>
        Prices.TryGetValue(model, out var price) ? (promptTokens * price.Input + completionTokens * price.Output) / 1_000_000 : null;
}

internal sealed class ModelPrice
{
    [Range(0, 10_000)] public double Input { get; set; }
    [Range(0, 10_000)] public double Output { get; set; }
}

/// <summary>
/// The range a stored value may take. An upload row outside it is rejected at import, and the aggregation queries clamp to
/// it as well (rows stored before the bounds existed), so that no sum over <see cref="WorkloadOptions.MaxRowsPerUser"/> rows overflows.
/// </summary>
internal static class WorkloadBounds
{
    public const long MaxTokens = 1_000_000_000_000;
    public const double MaxCostUsd = 1e9;
    public const double MaxLatencyMs = 1e9;
}
