using System.Diagnostics;
using Apex.Bench;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using Xunit.Abstractions;

namespace Apex.Tests.Cluster;

/// <summary>
/// Issue 17: PostgreSQL under load. 50 concurrent users drive a few hundred runs over HTTP + SSE (the bench's load
/// client); every run must end <c>run_completed</c>, with no event lost, duplicated or foreign, and no deadlock may occur:
/// neither in the servers' logs (a retried one is logged too) nor in PostgreSQL's own count for the database.
/// </summary>
public sealed class PostgresLoadTests(ITestOutputHelper output)
{
    private const int Users = 50, Runs = 300;

    private static readonly Dictionary<string, string> Limits = new()
    {
        ["Apex:Limits:MaxConnectionsPerUser"] = "1000",
        ["Apex:Limits:MaxActiveRunsPerUser"] = "8",
        ["Apex:Limits:AuthRequestsPerMinutePerAddress"] = "100000",
        ["Apex:Limits:MessagesPerMinutePerUser"] = "100000",
    };

    private static SseLoadOptions Load(Uri server, IReadOnlyList<Uri>? others = null) =>
        new(server, Users, Runs, Warmup: 0, TimeLimit: TimeSpan.FromSeconds(120), RunTimeLimit: TimeSpan.FromSeconds(60), OtherServers: others);

    [Fact]
    public async Task FiftyUsersOnOneNodeEndEveryRunCompletedWithoutADeadlock()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var log = new CapturedLog();
        var settings = database.ServerSettings();
        foreach (var (key, value) in Limits) settings[key] = value;
        await using var server = await ApexTestServer.StartAsync(settings, services => services.AddSingleton<ILoggerProvider>(log));

        var clock = Stopwatch.StartNew();
        var report = await SseLoadGenerator.RunAsync(Load(server.BaseAddress));
        output.WriteLine($"{clock.Elapsed.TotalSeconds:0.0} s\n{report}");

        AssertEveryRunCompleted(report);
        Assert.DoesNotContain(log.Entries, IsDeadlock);
        Assert.Empty(log.Errors);
        Assert.Equal(0, await DeadlocksAsync(database));
    }

    [Fact]
    public async Task FiftyUsersOnThreeNodesOfOneDatabaseEndEveryRunCompletedWithoutADeadlock()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var environment = new Dictionary<string, string>
        {
            ["Apex__Storage__Provider"] = "postgres",
            ["Apex__Storage__ConnectionString"] = database.ConnectionString,
        };
        foreach (var (key, value) in Limits) environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
        var ct = Waits.Timeout(180);
        // The first node creates the schema; the others start together against it.
        var first = await ServerProcess.StartAsync(database.ConnectionString, environment, ct);
        ServerProcess[] nodes = [first, .. await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => ServerProcess.StartAsync(database.ConnectionString, environment, ct)))];
        try
        {
            var clock = Stopwatch.StartNew();
            var report = await SseLoadGenerator.RunAsync(Load(nodes[0].BaseAddress, [nodes[1].BaseAddress, nodes[2].BaseAddress]), cancellationToken: ct);
            output.WriteLine($"{clock.Elapsed.TotalSeconds:0.0} s\n{report}");

            AssertEveryRunCompleted(report);
            var lines = nodes.SelectMany(n => n.Output).ToList();
            Assert.DoesNotContain(lines, IsDeadlock);
            Assert.DoesNotContain(lines, l => l.StartsWith("fail:", StringComparison.Ordinal));
            Assert.Equal(0, await DeadlocksAsync(database));
            // The runs were executed by more than one node: the cluster path was the one under load.
            await using var connection = new NpgsqlConnection(database.ConnectionString);
            await connection.OpenAsync(ct);
            await using var command = new NpgsqlCommand("SELECT count(DISTINCT node_id) FROM runs", connection);
            Assert.True((long)(await command.ExecuteScalarAsync(ct))! >= 2, "the runs were executed on one node only");
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    /// <summary>Every run of a load ended completed, and every event arrived once, in order, to its owner only.</summary>
    internal static void AssertEveryRunCompleted(SseLoadReport report, int runs = Runs)
    {
        Assert.False(report.TimedOut);
        Assert.Empty(report.EndsOtherThanCompleted);
        Assert.Empty(report.ErrorKinds);
        Assert.Equal(runs, report.Completed);
        Assert.Equal((0L, 0L, 0L), (report.Lost, report.Duplicated, report.Foreign));
        // Each run of the built-in model writes the same events but for how many message_delta rows its answer is joined
        // into (that depends on timing): a short count of the others would be events lost without a gap in seq.
        var fixedEvents = report.Events - report.AnswerPieces;
        Assert.Equal(runs * (fixedEvents / runs), fixedEvents);
        Assert.True(report.Events >= runs * 10, $"only {report.Events} events");
    }

    private static bool IsDeadlock(string line) =>
        line.Contains("40P01", StringComparison.Ordinal) || line.Contains("deadlock", StringComparison.OrdinalIgnoreCase);

    /// <summary>PostgreSQL's own count of deadlocks detected in the database (retried ones included).</summary>
    private static async Task<long> DeadlocksAsync(PostgresTestDatabase database)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        // Statistics reach the shared view when a backend goes idle: ask for a fresh snapshot.
        await using var command = new NpgsqlCommand("SELECT pg_stat_clear_snapshot(); SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()", connection);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.NextResultAsync();
        return await reader.ReadAsync() ? reader.GetInt64(0) : -1;
    }
}
