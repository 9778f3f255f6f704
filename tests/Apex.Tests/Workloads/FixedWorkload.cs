using System.Globalization;
using System.Text;

namespace Apex.Tests.Workloads;

/// <summary>A small fixed dataset and an independent computation of every figure the tools report.</summary>
internal sealed record Row(DateTimeOffset Ts, string Provider, string Model, long Prompt, long Completion, double Latency, string Status, double? Cost, string Hash, string Feature)
{
    public static readonly Dictionary<string, (double In, double Out)> Prices = new()
    {
        ["gpt-4o"] = (2.50, 10.00), ["gpt-4o-mini"] = (0.15, 0.60), ["claude-3-5-sonnet"] = (3.00, 15.00),
    };

    public double EffectiveCost => Cost ?? (Prompt * Prices[Model].In + Completion * Prices[Model].Out) / 1_000_000;

    public static List<Row> Fixed(int count)
    {
        string[] models = ["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet"];
        var start = new DateTimeOffset(2026, 11, 1, 0, 0, 0, TimeSpan.Zero);
        return [.. Enumerable.Range(0, count).Select(i => new Row(
            start.AddMinutes(i * 10),
            models[i % 3].StartsWith("gpt", StringComparison.Ordinal) ? "openai" : "anthropic",
            models[i % 3],
            1000 + i * 37 % 500,
            200 + i * 13 % 100,
            500 + i * 71 % 1500,
            i % 25 == 0 ? "rate_limited" : "ok",
            i % 10 == 0 ? 0.05 : null,
            i % 4 == 0 ? $"h{i % 8}" : $"u{i}",
            i % 2 == 0 ? "chat" : "search"))];
    }

    public static string Csv(IEnumerable<Row> rows)
    {
        var csv = new StringBuilder("timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status,cost,prompt_hash,feature\n");
        foreach (var r in rows)
            csv.Append(CultureInfo.InvariantCulture, $"{r.Ts:O},{r.Provider},{r.Model},{r.Prompt},{r.Completion},{r.Latency},{r.Status},{r.Cost?.ToString(CultureInfo.InvariantCulture)},{r.Hash},{r.Feature}\n");
        return csv.ToString();
    }

    public static double P(IEnumerable<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(p / 100 * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
