using System.Collections.Immutable;
using System.Globalization;
using System.Text;

namespace Apex.Server.Workloads;

/// <summary>
/// Realistic synthetic LLM usage, deterministic for a seed: several models and providers, a daily
/// cycle, repeated prompts, an error burst and latency outliers. Used by <c>POST /api/workloads/sample</c>,
/// the tests and the benchmarks. The output is CSV, so it goes through the same import as an upload.
/// </summary>
internal static class SampleWorkload
{
    private sealed record Model(string Provider, string Name, double Weight, int PromptMean, int CompletionMean, double LatencyMs);

    private static readonly ImmutableArray<Model> Models =
    [
        new("openai", "gpt-4o", 0.35, 1800, 450, 1900),
        new("openai", "gpt-4o-mini", 0.30, 900, 250, 650),
        new("anthropic", "claude-3-5-sonnet", 0.20, 2200, 600, 2400),
        new("anthropic", "claude-3-5-haiku", 0.10, 700, 200, 800),
        new("meta", "llama-3.1-70b", 0.05, 1200, 300, 1100),
    ];

    private static readonly ImmutableArray<string> Features = ["chat", "summarize", "classify", "extract", "search"];
    private static readonly ImmutableArray<string> Teams = ["support", "growth", "platform"];

    public static string Csv(DateTimeOffset end, int days, int callsPerDay, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(days);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(callsPerDay);
        var random = new Random(seed);
        var start = new DateTimeOffset(end.UtcDateTime.Date, TimeSpan.Zero).AddDays(-days);
        var burstStart = start.AddDays(days / 2.0).AddHours(14);
        var csv = new StringBuilder("timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status,prompt_hash,feature,team\n");
        var total = days * callsPerDay;
        for (var i = 0; i < total; i++)
        {
            var ts = start.AddSeconds(DailyCycleOffset(random, days));
            var model = Pick(random);
            var feature = Features[random.Next(Features.Length)];
            var repeated = feature is "classify" or "search" && random.NextDouble() < 0.6;
            var hash = repeated ? $"p{random.Next(40):00}" : $"u{seed}-{i}";
            var prompt = (int)(model.PromptMean * (0.5 + random.NextDouble()));
            var completion = (int)(model.CompletionMean * (0.5 + random.NextDouble()));
            var latency = model.LatencyMs * (0.6 + random.NextDouble() * 0.8) + completion * 2;
            if (random.NextDouble() < 0.01) latency *= 8; // outliers
            var inBurst = ts >= burstStart && ts < burstStart.AddHours(2) && model.Name == "gpt-4o";
            var status = random.NextDouble() < (inBurst ? 0.35 : 0.01) ? (random.NextDouble() < 0.7 ? "rate_limited" : "timeout") : "ok";
            if (status != "ok") completion = 0;
            csv.Append(CultureInfo.InvariantCulture, $"{ts:yyyy-MM-ddTHH:mm:ss.fffZ},{model.Provider},{model.Name},{prompt},{completion},{latency:0.0},{status},{hash},{feature},{Teams[random.Next(Teams.Length)]}\n");
        }
        return csv.ToString();
    }

    /// <summary>Seconds into the period, weighted towards working hours (09:00–18:00 UTC).</summary>
    private static double DailyCycleOffset(Random random, int days)
    {
        var day = random.Next(days);
        double hour;
        do hour = random.NextDouble() * 24; while (random.NextDouble() > (hour is >= 9 and < 18 ? 1.0 : 0.25));
        return day * 86400 + hour * 3600;
    }

    private static Model Pick(Random random)
    {
        var roll = random.NextDouble();
        foreach (var model in Models)
        {
            if (roll < model.Weight) return model;
            roll -= model.Weight;
        }
        return Models[^1];
    }
}
