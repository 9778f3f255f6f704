using System.ComponentModel.DataAnnotations;

namespace Apex.Server.Storage;

/// <summary>Upload limits and the price table used when a row carries no cost (section <c>Apex:Workloads</c>).</summary>
internal sealed class WorkloadOptions
{
    public const string Section = "Apex:Workloads";

    [Range(1024, 1024L * 1024 * 1024)] public long MaxUploadBytes { get; set; } = 20 * 1024 * 1024;
    [Range(1, 5_000_000)] public int MaxRows { get; set; } = 200_000;

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
