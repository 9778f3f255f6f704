using System.Globalization;
using BenchmarkDotNet.Running;

namespace Apex.Bench;

/// <summary>
/// <c>Apex.Bench micro [BenchmarkDotNet args]</c>: the micro-benchmarks.
/// <c>Apex.Bench load --url U --users V --messages M [--idle N] [--idle-hold SECONDS] [--pid P] [--seconds S]</c>: the load generator.
/// <c>Apex.Bench upload-load --url U [--uploads N] [--rows R] [--pid P]</c>: parallel large uploads while another user writes.
/// <c>Apex.Bench sse --url U[,U2,…] --users V --runs R [--warmup W] [--pid P[,P2,…]] [--seconds S] [--agent-file F]</c>: the HTTP + SSE load generator
/// (several URLs: one cluster; an agent file: each user defines that agent and every message names it).
/// </summary>
internal static class BenchProgram
{
    public static async Task<int> Main(string[] args)
    {
        string Arg(string name, string fallback)
        {
            var i = Array.IndexOf(args, name);
            return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
        }
        int Int(string name, int fallback) => int.Parse(Arg(name, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

        if (args.Length > 0 && args[0] == "sse")
        {
            // --url and --pid take a comma-separated list for several nodes of one cluster.
            var urls = Arg("--url", "http://127.0.0.1:5080/").Split(',').Select(u => new Uri(u)).ToArray();
            var pids = Arg("--pid", "").Split(',', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
            var options = new SseLoadOptions(urls[0], Int("--users", 50), Int("--runs", 3000), Int("--warmup", 100),
                TimeSpan.FromSeconds(Int("--seconds", 900)), TimeSpan.FromSeconds(Int("--run-seconds", 60)), pids.Length > 0 ? pids[0] : null, urls[1..], pids.Length > 1 ? pids[1..] : null,
                Arg("--agent-file", "") is { Length: > 0 } agentFile ? await File.ReadAllTextAsync(agentFile) : null, args.Contains("--sample-data"));
            var report = await SseLoadGenerator.RunAsync(options, Console.Out);
            Console.WriteLine(report);
            return report.Lost + report.Duplicated + report.Foreign + report.NotCompleted + report.Errors == 0 && !report.TimedOut ? 0 : 1;
        }

        if (args.Length > 0 && args[0] == "upload-load")
        {
            var report = await UploadLoadGenerator.RunAsync(new Uri(Arg("--url", "http://127.0.0.1:5080/")), Int("--uploads", 3), Int("--rows", 200_000),
                args.Contains("--pid") ? Int("--pid", 0) : null, Console.Out);
            Console.WriteLine(report);
            return report.UploadResults.All(r => r == "200") ? 0 : 1;
        }

        if (args.Length > 0 && args[0] == "load")
        {
            var options = new LoadOptions(new Uri(Arg("--url", "http://127.0.0.1:5080/")), Int("--users", 100), Int("--messages", 5),
                TimeSpan.FromSeconds(Int("--seconds", 300)), Int("--idle", 0), args.Contains("--pid") ? Int("--pid", 0) : null, Int("--idle-hold", 2));
            var report = await LoadGenerator.RunAsync(options, Console.Out);
            Console.WriteLine(report);
            return report.Lost + report.Duplicated + report.Foreign == 0 && !report.TimedOut ? 0 : 1;
        }

        if (args.Length > 1 && args[0] == "probe")
        {
            await using var rig = new Rig();
            var evt = new Apex.Client.AgentThinking(new Apex.Client.AgentThinkingData("x")) { EventId = "e", ThreadId = rig.ThreadId, UserId = rig.UserId, Timestamp = DateTimeOffset.UtcNow };
            var probeClock = System.Diagnostics.Stopwatch.StartNew();
            var cpuBefore = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime;
            for (var i = 0; i < 2000; i++)
            {
                switch (args[1])
                {
                    case "append": await rig.Events.AppendEventsAsync([new Apex.Server.Storage.EventAppend(evt)], CancellationToken.None); break;
                    case "read": await rig.Threads.GetThreadAsync(rig.UserId, rig.ThreadId, CancellationToken.None); break;
                    case "log": await rig.Log.AppendAsync(evt with { EventId = null }, CancellationToken.None); break;
                    case "write": await rig.Threads.UpdateThreadAsync(rig.UserId, rig.ThreadId, "bench", null, DateTimeOffset.UtcNow, CancellationToken.None); break;
                    case "update":
                        await rig.Database.WriteAsync(async (c, t) =>
                        {
                            await using var command = c.CreateCommand();
                            command.CommandText = $"UPDATE threads SET last_seq = last_seq + 1 WHERE id = '{rig.ThreadId}' AND user_id = '{rig.UserId}' RETURNING last_seq";
                            return await command.ExecuteScalarAsync();
                        }, CancellationToken.None);
                        break;
                    case "update-plain":
                        await rig.Database.WriteAsync(async (c, t) =>
                        {
                            await using var command = c.CreateCommand();
                            command.CommandText = $"UPDATE threads SET last_seq = last_seq + 1 WHERE id = '{rig.ThreadId}' AND user_id = '{rig.UserId}'";
                            return await command.ExecuteNonQueryAsync();
                        }, CancellationToken.None);
                        break;
                    case "insert":
                        await rig.Database.WriteAsync(async (c, t) =>
                        {
                            await using var command = c.CreateCommand();
                            command.CommandText = $"INSERT INTO events (thread_id, seq, user_id, run_id, type, payload, created_at) VALUES ('{rig.ThreadId}', {i + 1}, '{rig.UserId}', NULL, 'x', '{{}}', 0)";
                            return await command.ExecuteNonQueryAsync();
                        }, CancellationToken.None);
                        break;
                    case "tx": await rig.Database.WriteAsync((c, t) => Task.FromResult(0), CancellationToken.None); break;
                    case "cmd":
                        await using (var c = await rig.Database.OpenAsync(CancellationToken.None))
                        await using (var command = c.CreateCommand())
                        {
                            command.CommandText = "UPDATE runs SET results = 'x' WHERE id = 'none'";
                            await command.ExecuteNonQueryAsync();
                        }
                        break;
                }
            }
            var cpu = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime - cpuBefore;
            GC.Collect();
            Console.WriteLine($"{args[1]}: {probeClock.Elapsed.TotalMilliseconds * 1000 / 2000:0} µs wall, {cpu.TotalMilliseconds * 1000 / 2000:0} µs CPU per op; pending finalizers after a GC: {GC.GetGCMemoryInfo().FinalizationPendingCount}");
            return 0;
        }

        if (args.Length > 1 && args[0] == "runs")
        {
            // Complete runs in a loop, in process: a steady target for a profiler.
            var benchmark = new RunBenchmarks();
            benchmark.Setup();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var count = int.Parse(args[1], CultureInfo.InvariantCulture);
            for (var i = 0; i < count; i++)
            {
                await benchmark.CompleteRun();
                if (Environment.GetEnvironmentVariable("APEX_BENCH_GC") is not null && i % 200 == 0)
                {
                    var info = GC.GetGCMemoryInfo();
                    Console.WriteLine($"run {i}: gen0 {GC.CollectionCount(0)}, gen2 {GC.CollectionCount(2)}, pending finalizers {info.FinalizationPendingCount}, heap {info.HeapSizeBytes / 1024 / 1024} MB");
                }
            }
            Console.WriteLine($"{count} runs in {clock.Elapsed.TotalSeconds:0.00} s, {clock.Elapsed.TotalMilliseconds / count:0.00} ms each, CPU {System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds / count:0.00} ms each");
            benchmark.Cleanup();
            return 0;
        }

        BenchmarkSwitcher.FromAssembly(typeof(LoadGenerator).Assembly).Run(args.Length > 0 && args[0] == "micro" ? args[1..] : args);
        return 0;
    }
}
