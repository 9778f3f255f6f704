using System.Globalization;
using BenchmarkDotNet.Running;

namespace Apex.Bench;

/// <summary>
/// <c>Apex.Bench micro [BenchmarkDotNet args]</c>: the micro-benchmarks.
/// <c>Apex.Bench load --url U --users V --messages M [--idle N] [--pid P] [--seconds S]</c>: the load generator.
/// </summary>
internal static class BenchProgram
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "load")
        {
            string Arg(string name, string fallback)
            {
                var i = Array.IndexOf(args, name);
                return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
            }
            int Int(string name, int fallback) => int.Parse(Arg(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
            var options = new LoadOptions(new Uri(Arg("--url", "http://127.0.0.1:5080/")), Int("--users", 100), Int("--messages", 5),
                TimeSpan.FromSeconds(Int("--seconds", 300)), Int("--idle", 0), args.Contains("--pid") ? Int("--pid", 0) : null);
            var report = await LoadGenerator.RunAsync(options, Console.Out);
            Console.WriteLine(report);
            return report.Lost + report.Duplicated + report.Foreign == 0 && !report.TimedOut ? 0 : 1;
        }

        BenchmarkSwitcher.FromAssembly(typeof(LoadGenerator).Assembly).Run(args.Length > 0 && args[0] == "micro" ? args[1..] : args);
        return 0;
    }
}
