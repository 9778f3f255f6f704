using System.Diagnostics;
using Apex.Client;
using Apex.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Apex.Tests.Cluster;

/// <summary>
/// Several server processes on one PostgreSQL database, clients spread across them. The scenarios take the settings every node
/// of the cluster gets on top (<see cref="RedisClusterTests"/> runs them again with Redis).
/// </summary>
public sealed class ClusterTests(ITestOutputHelper output)
{
    [Fact]
    public Task ClientsSpreadAcrossThreeNodesAndMovingBetweenThemSeeEveryEventOnceInOrder() => ClientsSpreadAcrossThreeNodesAsync(output, null);

    [Fact]
    public Task KillingANodeMidRunEndsItsRunsAsNodeLostAndLeavesTheOthersUntouched() => KillingANodeMidRunAsync(output, null);

    [Fact]
    public Task CancelOnOneNodeStopsTheRunExecutingOnAnother() => CancelOnOneNodeAsync(output, null);

    internal static Dictionary<string, string> NodeEnvironment(PostgresTestDatabase database, string delay, Dictionary<string, string>? cluster, Dictionary<string, string>? extra = null)
    {
        var environment = new Dictionary<string, string>
        {
            ["Apex__Storage__Provider"] = "postgres",
            ["Apex__Storage__ConnectionString"] = database.ConnectionString,
            ["Apex__Llm__BuiltInDelay"] = delay,
            ["Apex__Limits__RunLease"] = "00:00:03",
            ["Apex__Limits__HeartbeatInterval"] = "00:00:01",
        };
        foreach (var (key, value) in cluster ?? []) environment[key] = value;
        foreach (var (key, value) in extra ?? []) environment[key] = value;
        return environment;
    }

    internal static async Task<ServerProcess[]> StartNodesAsync(PostgresTestDatabase database, string delay, Dictionary<string, string>? cluster, CancellationToken ct,
        params Dictionary<string, string>?[] extras)
    {
        // The first node creates the schema; the others start together against it.
        var first = await ServerProcess.StartAsync(database.ConnectionString, NodeEnvironment(database, delay, cluster, extras.ElementAtOrDefault(0)), ct);
        var rest = await Task.WhenAll(Enumerable.Range(1, extras.Length - 1).Select(i => ServerProcess.StartAsync(database.ConnectionString,
            NodeEnvironment(database, delay, cluster, extras[i]), ct)));
        return [first, .. rest];
    }

    internal static async Task ResumeAsync(ApexSocket socket, string threadId, long cursor, CancellationToken ct)
    {
        await socket.SendAsync("resume", new ResumePayload(threadId, cursor), ApexJsonContext.Default.ResumePayload, ct);
        Assert.Equal(cursor, Assert.IsType<ThreadFollowed>(await socket.ReceiveAsync(ct)).Data.AfterSeq);
    }

    [Fact]
    public async Task TheGoldenPathRunsOnPostgres()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        await using var server = await ApexTestServer.StartAsync(database.ServerSettings());
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("How can I cut my LLM cost?", cancellationToken: ct);
        Assert.IsType<RunCompleted>(events[^1]);
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
        Assert.Equal(["user", "assistant"], (await client.ListMessagesAsync(events[0].ThreadId!, cancellationToken: ct)).Items.Select(m => m.Role));
    }

    internal static async Task ClientsSpreadAcrossThreeNodesAsync(ITestOutputHelper output, Dictionary<string, string>? cluster)
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(180);
        var nodes = await StartNodesAsync(database, "00:00:00.002", cluster, ct, null, null, null);
        try
        {
            const int users = 12, messages = 3;
            var results = await Task.WhenAll(Enumerable.Range(0, users).Select(async i =>
            {
                using var home = nodes[i % 3].CreateClient();
                var tokens = await home.RegisterAsync($"cluster-{i}-{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
                var thread = await home.CreateThreadAsync($"t{i}", cancellationToken: ct);
                var received = new List<ApexEvent>();
                for (var m = 0; m < messages; m++)
                {
                    // Tokens from the home node, a ticket from the next node, the socket on the one after: all one cluster.
                    using var issuer = nodes[(i + m + 1) % 3].CreateClient();
                    issuer.SignIn(tokens);
                    using var socket = await issuer.ConnectAsync(ct, nodes[(i + m + 2) % 3].BaseAddress);
                    await ResumeAsync(socket, thread.Id, received.Count == 0 ? 0 : received[^1].Seq, ct);
                    await socket.SendMessageAsync($"message {m}", thread.Id, cancellationToken: ct);
                    received.AddRange((await socket.ReceiveUntilAsync(e => e.IsTerminal && received.Count(x => x.IsTerminal) == m, ct)).Where(e => e.Seq > 0));
                    socket.Socket.Abort();
                }
                return (UserId: tokens.User.Id, Thread: thread.Id, Received: received);
            }));

            var executedOn = new HashSet<string>();
            foreach (var (userId, thread, received) in results)
            {
                Assert.Equal(Enumerable.Range(1, received.Count).Select(i => (long)i), received.Select(e => e.Seq));
                Assert.All(received, e => Assert.Equal((userId, thread), (e.UserId, e.ThreadId)));
                Assert.Equal(messages, received.Count(e => e is RunCompleted));
                foreach (var started in received.OfType<RunStarted>()) executedOn.Add(started.Data.NodeId);
            }
            output.WriteLine($"runs executed on {executedOn.Count} nodes");
            Assert.True(executedOn.Count >= 2, "runs were spread over the nodes");
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    internal static async Task KillingANodeMidRunAsync(ITestOutputHelper output, Dictionary<string, string>? cluster)
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(180);
        var nodes = await StartNodesAsync(database, "00:00:00.150", cluster, ct, null, null, null);
        try
        {
            const int users = 6;
            var clients = await Task.WhenAll(Enumerable.Range(0, users).Select(async i =>
            {
                var client = nodes[i % 3].CreateClient();
                await client.RegisterAsync($"kill-{i}-{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
                var socket = await client.ConnectAsync(ct);
                await socket.SendMessageAsync("analyse my workload", cancellationToken: ct);
                var events = (await socket.ReceiveUntilAsync(e => e is RunStarted, ct)).Where(e => e.Seq > 0).ToList();
                return (Client: client, Socket: socket, Node: i % 3, Events: events);
            }));

            var runNode = clients.ToDictionary(c => c.Events[0].RunId!, c => ((RunStarted)c.Events[^1]).Data.NodeId);
            var victim = nodes.First(n => runNode.Values.Any(id => id.Contains($"-{n.ProcessId}-", StringComparison.Ordinal)));
            var victimIndex = Array.IndexOf(nodes, victim);
            victim.Kill();
            var clock = Stopwatch.StartNew();

            await Task.WhenAll(clients.Select(async c =>
            {
                var socket = c.Socket;
                if (c.Node == victimIndex)
                {
                    // This client's node died: it reconnects to a surviving node and resumes from its cursor.
                    socket.Dispose();
                    using var survivor = nodes[(victimIndex + 1) % 3].CreateClient();
                    survivor.SignIn(c.Client.Tokens!);
                    socket = await survivor.ConnectAsync(ct);
                    await ResumeAsync(socket, c.Events[0].ThreadId!, c.Events[^1].Seq, ct);
                }
                var rest = await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);
                c.Events.AddRange(rest);
                socket.Dispose();
            }));
            output.WriteLine($"all runs ended {clock.Elapsed.TotalSeconds:0.0} s after the kill");

            var lost = 0;
            foreach (var c in clients)
            {
                var runId = c.Events[0].RunId!;
                Assert.Equal(Enumerable.Range(1, c.Events.Count).Select(i => (long)i), c.Events.Select(e => e.Seq));
                Assert.Single(c.Events, e => e.IsTerminal);
                if (runNode[runId].Contains($"-{victim.ProcessId}-", StringComparison.Ordinal))
                {
                    Assert.Equal("node_lost", Assert.IsType<RunFailed>(c.Events[^1]).Data.Reason);
                    lost++;
                }
                else
                {
                    Assert.IsType<RunCompleted>(c.Events[^1]);
                }
                using var reader = nodes[(victimIndex + 1) % 3].CreateClient();
                reader.SignIn(c.Client.Tokens!);
                Assert.NotEqual("running", (await reader.GetRunAsync(runId, ct)).Status);
                c.Client.Dispose();
            }
            Assert.True(lost >= 1);
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    internal static async Task CancelOnOneNodeAsync(ITestOutputHelper output, Dictionary<string, string>? cluster)
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(120);
        // Node A serves clients and executes nothing; node B executes every run.
        var nodes = await StartNodesAsync(database, "00:00:00.300", cluster, ct, new() { ["Apex__Limits__MaxConcurrentRunsPerNode"] = "0" }, null);
        try
        {
            using var client = nodes[0].CreateClient();
            await client.RegisterAsync("cancel@example.com", "correct horse battery", ct);
            using var socket = await client.ConnectAsync(ct);
            await socket.SendMessageAsync("a long analysis", cancellationToken: ct);
            var started = (RunStarted)(await socket.ReceiveUntilAsync(e => e is RunStarted, ct))[^1];
            Assert.Contains($"-{nodes[1].ProcessId}-", started.Data.NodeId, StringComparison.Ordinal);

            var clock = Stopwatch.StartNew();
            await socket.SendAsync("stop_agent", new StopAgentPayload(started.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);
            var cancelled = Assert.IsType<RunCancelled>((await socket.ReceiveUntilAsync(e => e.IsTerminal, ct))[^1]);
            output.WriteLine($"stop_agent on node A -> run_cancelled from node B: {clock.Elapsed.TotalMilliseconds:0} ms");
            Assert.Equal("cancelled_by_user", cancelled.Data.Reason);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }
}
