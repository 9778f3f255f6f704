using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using Apex.Bench;
using Apex.Client;
using Apex.Tests.Infrastructure;
using Npgsql;
using Xunit.Abstractions;

namespace Apex.Tests.Cluster;

/// <summary>
/// Issue 16: the cluster on PostgreSQL + Redis (<c>Apex:Redis:Configuration</c>). The cluster scenarios of <see cref="ClusterTests"/>
/// again with the wake-ups over Redis; the per-user caps, rate limits and tickets held across nodes; and Redis stopped under load
/// and started again, with every event delivered exactly once. Skipped without a Redis server (scripts/test.sh starts one).
/// </summary>
public sealed class RedisClusterTests(ITestOutputHelper output)
{
    private static Dictionary<string, string> Shared => RedisTestServer.NodeSettings(RedisTestServer.Shared!);

    [RedisFact]
    public Task ClientsSpreadAcrossThreeNodesOverRedisSeeEveryEventOnceInOrder() => ClusterTests.ClientsSpreadAcrossThreeNodesAsync(output, Shared);

    [RedisFact]
    public Task KillingANodeMidRunOverRedisEndsItsRunsAsNodeLost() => ClusterTests.KillingANodeMidRunAsync(output, Shared);

    [RedisFact]
    public Task CancelOverRedisOnOneNodeStopsTheRunExecutingOnAnother() => ClusterTests.CancelOnOneNodeAsync(output, Shared);

    [RedisFact]
    public async Task WithRedisARunOnAnotherNodeReachesTheClientWithoutASingleNotify()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(120);
        // Node 0 serves the client and executes nothing; node 1 executes the run: every wake-up crosses nodes.
        var nodes = await ClusterTests.StartNodesAsync(database, "00:00:00.005", Shared, ct, new() { ["Apex__Limits__MaxConcurrentRunsPerNode"] = "0" }, null);
        try
        {
            await using var listener = new NpgsqlConnection(database.ConnectionString);
            await listener.OpenAsync(ct);
            var heard = new List<string>();
            listener.Notification += (_, e) => heard.Add(e.Channel);
            await using (var listen = new NpgsqlCommand("LISTEN apex_events; LISTEN apex_runs; LISTEN apex_cancel; LISTEN apex_sessions;", listener))
                await listen.ExecuteNonQueryAsync(ct);

            using var client = nodes[0].CreateClient();
            await client.RegisterAsync($"quiet-{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
            using var socket = await client.ConnectAsync(ct);
            var events = await socket.RunToEndAsync("How can I cut my LLM cost?", cancellationToken: ct);
            Assert.IsType<RunCompleted>(events[^1]);
            Assert.Contains($"-{nodes[1].ProcessId}-", events.OfType<RunStarted>().Single().Data.NodeId, StringComparison.Ordinal);
            Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));

            // A notification sent during the run would have been delivered by now (on commit, before the client saw the event).
            while (await listener.WaitAsync(TimeSpan.FromMilliseconds(300), ct))
            {
            }
            Assert.Empty(heard);
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    [RedisFact]
    public async Task AUsersThirdSocketIsRefusedOnADifferentNodeWhenTheCapIsTwo()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(120);
        var cluster = Shared;
        cluster["Apex__Limits__MaxConnectionsPerUser"] = "2";
        var nodes = await ClusterTests.StartNodesAsync(database, "00:00:00", cluster, ct, null, null, null);
        try
        {
            using var client = nodes[0].CreateClient();
            await client.RegisterAsync($"cap-{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
            using var first = await client.ConnectAsync(ct, nodes[0].BaseAddress);
            using var second = await client.ConnectAsync(ct, nodes[1].BaseAddress);

            // Node 2 holds none of the user's sockets: only the cluster's count can refuse this one.
            var (status, reason) = await RefusedAsync(client, nodes[2].BaseAddress, ct);
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
            Assert.Equal("At most 2 connections per user.", reason);

            // A socket that closes frees its place for the whole cluster.
            await first.Socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", ct);
            using var third = await ConnectOnceFreedAsync(client, nodes[2].BaseAddress, ct);
            Assert.IsType<ConnectionEstablished>(third.Established);
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    [RedisFact]
    public async Task RateLimitsAndTicketsHoldAcrossNodes()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(120);
        var cluster = Shared;
        cluster["Apex__Limits__AuthRequestsPerMinutePerAddress"] = "3";
        cluster["Apex__Limits__MessagesPerMinutePerUser"] = "2";
        var nodes = await ClusterTests.StartNodesAsync(database, "00:00:00", cluster, ct, null, null, null);
        try
        {
            var clients = nodes.Select(n => n.CreateClient()).ToArray();
            var email = $"limits-{Guid.NewGuid():N}@example.com";
            // Three sign-in requests, one on each node, then a fourth: refused, although no node saw more than two.
            // (The window is a clock minute: a boundary crossed in between starts a new window, so the check is repeated then.)
            var minute = DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 60;
            var tokens = await clients[0].RegisterAsync(email, "correct horse battery", ct);
            await clients[1].LoginAsync(email, "correct horse battery", ct);
            await clients[2].LoginAsync(email, "correct horse battery", ct);
            var refused = await Assert.ThrowsAsync<ApexApiException>(() => clients[0].LoginAsync(email, "correct horse battery", ct));
            Assert.True(refused.Status == HttpStatusCode.TooManyRequests || DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 60 != minute, $"got {refused.Status}");

            // Messages: two on two nodes, the third on the third node is over the user's limit.
            foreach (var c in clients) c.SignIn(tokens);
            var thread = await clients[0].CreateThreadAsync("limits", cancellationToken: ct);
            minute = DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 60;
            await clients[0].SendMessageAsync(thread.Id, "one", "enqueue", ct);
            await clients[1].SendMessageAsync(thread.Id, "two", "enqueue", ct);
            var limited = await Assert.ThrowsAsync<ApexApiException>(() => clients[2].SendMessageAsync(thread.Id, "three", "enqueue", ct));
            Assert.True(limited.Status == HttpStatusCode.TooManyRequests || DateTimeOffset.UtcNow.ToUnixTimeSeconds() / 60 != minute, $"got {limited.Status}");

            // A ticket from node 0 opens a socket on node 1 once; on node 2 it is spent. It never reached the database.
            var ticket = await clients[0].GetWsTicketAsync(ct);
            using (var socket = await OpenAsync(nodes[1].BaseAddress, ticket, ct))
                Assert.Equal(WebSocketState.Open, socket.State);
            var (status, reason) = await ClosedAsync(await OpenAsync(nodes[2].BaseAddress, ticket, ct), ct);
            Assert.Equal((WebSocketCloseStatus.PolicyViolation, "invalid or expired ticket"), (status, reason));
            await using var connection = new NpgsqlConnection(database.ConnectionString);
            await connection.OpenAsync(ct);
            await using var count = new NpgsqlCommand("SELECT count(*) FROM ws_tickets", connection);
            Assert.Equal(0L, (long)(await count.ExecuteScalarAsync(ct))!);

            foreach (var node in nodes)
            {
                var ready = await ReadyAsync(node, ct);
                Assert.Equal(("connected", "redis", "cluster"), (ready["redis"], ready["signals"], ready["limits"]));
            }
            foreach (var c in clients) c.Dispose();
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    [RedisFact]
    public async Task RedisStoppedUnderLoadAndStartedAgainLosesAndDuplicatesNoEvent()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(300);
        await using var redis = await RedisTestServer.StartPrivateAsync(ct);
        var cluster = RedisTestServer.NodeSettings(redis.Configuration);
        cluster["Apex__Limits__MaxConnectionsPerUser"] = "1000";
        cluster["Apex__Limits__MaxActiveRunsPerUser"] = "8";
        cluster["Apex__Limits__AuthRequestsPerMinutePerAddress"] = "100000";
        cluster["Apex__Limits__MessagesPerMinutePerUser"] = "100000";
        // Every answer piece its own event: each run writes the same number of events, so a short count is an event lost.
        cluster["Apex__Limits__MessageDeltaWindow"] = "00:00:00";
        var nodes = await ClusterTests.StartNodesAsync(database, "00:00:00.010", cluster, ct, null, null, null);
        try
        {
            foreach (var node in nodes) Assert.Equal("redis", (await ReadyAsync(node, ct))["signals"]);
            const int users = 24, runs = 360;
            var load = SseLoadGenerator.RunAsync(new SseLoadOptions(nodes[0].BaseAddress, users, runs, Warmup: 0, TimeLimit: TimeSpan.FromSeconds(240),
                RunTimeLimit: TimeSpan.FromSeconds(60), OtherServers: [nodes[1].BaseAddress, nodes[2].BaseAddress]), cancellationToken: ct);

            await RunsEndedAsync(database, 60, load, ct);
            redis.Stop();
            var clock = Stopwatch.StartNew();
            await SignalsAsync(nodes, "notify", ct);
            output.WriteLine($"every node on NOTIFY {clock.Elapsed.TotalMilliseconds:0} ms after Redis was killed");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the fallback took too long");
            foreach (var node in nodes) Assert.Equal(("unreachable", "node"), ((await ReadyAsync(node, ct))["redis"], (await ReadyAsync(node, ct))["limits"]));

            // Runs go on over NOTIFY, then Redis comes back on the same address.
            var ended = await EndedRunsAsync(database, ct);
            await RunsEndedAsync(database, ended + 60, load, ct);
            await redis.StartAsync(ct);
            clock.Restart();
            await SignalsAsync(nodes, "redis", ct);
            output.WriteLine($"every node back on Redis {clock.Elapsed.TotalMilliseconds:0} ms after it was started again");

            var report = await load;
            output.WriteLine(report.ToString());
            PostgresLoadTests.AssertEveryRunCompleted(report, runs);
            // No event waited for a wake-up that never came (such a run would be an error above, at the client's 60 s limit per run),
            // nor for long: the slow tail stays far from that limit.
            Assert.True(report.TimeToTerminalMs.P99 < 30_000, $"p99 to the terminal event {report.TimeToTerminalMs.P99:0} ms");
            foreach (var line in nodes.SelectMany(n => n.Output).Where(l => l.StartsWith("warn:", StringComparison.Ordinal) || l.StartsWith("fail:", StringComparison.Ordinal)))
                output.WriteLine(line);
            foreach (var node in nodes)
            {
                // The loss is logged once per node, not once per failed call.
                Assert.Single(node.Output, l => l.Contains("Redis connection lost", StringComparison.Ordinal));
                Assert.DoesNotContain(node.Output, l => l.StartsWith("fail:", StringComparison.Ordinal));
            }
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    [RedisFact]
    public async Task NodesStartedWhileRedisIsDownRunOnNotifyAndMoveToRedisWhenItStarts()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(180);
        await using var redis = await RedisTestServer.StartPrivateAsync(ct);
        redis.Stop();
        var nodes = await ClusterTests.StartNodesAsync(database, "00:00:00.005", RedisTestServer.NodeSettings(redis.Configuration), ct,
            new() { ["Apex__Limits__MaxConcurrentRunsPerNode"] = "0" }, null);
        try
        {
            foreach (var node in nodes)
            {
                var ready = await ReadyAsync(node, ct);
                Assert.Equal(("unreachable", "notify", "node"), (ready["redis"], ready["signals"], ready["limits"]));
            }
            using var client = nodes[0].CreateClient();
            await client.RegisterAsync($"late-{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
            // Node 1 executes; node 0 serves the socket: the wake-ups cross nodes over NOTIFY.
            using (var socket = await client.ConnectAsync(ct))
                Assert.IsType<RunCompleted>((await socket.RunToEndAsync("How can I cut my LLM cost?", cancellationToken: ct))[^1]);

            await redis.StartAsync(ct);
            var clock = Stopwatch.StartNew();
            await SignalsAsync(nodes, "redis", ct);
            output.WriteLine($"every node on Redis {clock.Elapsed.TotalMilliseconds:0} ms after it started");
            using (var socket = await client.ConnectAsync(ct))
            {
                var events = await socket.RunToEndAsync("And my latency?", cancellationToken: ct);
                Assert.IsType<RunCompleted>(events[^1]);
                Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
            }
            foreach (var node in nodes) Assert.Equal(("connected", "cluster"), ((await ReadyAsync(node, ct))["redis"], (await ReadyAsync(node, ct))["limits"]));
            // Both sockets opened with their ticket: the first from the database (issued while Redis was down), the second from Redis.
            await using var connection = new NpgsqlConnection(database.ConnectionString);
            await connection.OpenAsync(ct);
            await using var count = new NpgsqlCommand("SELECT count(*) FROM security_events WHERE kind = 'ticket_used'", connection);
            Assert.Equal(2L, (long)(await count.ExecuteScalarAsync(ct))!);
            Assert.Contains(nodes.SelectMany(n => n.Output), l => l.Contains("Redis is unreachable at start-up", StringComparison.Ordinal));
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    [RedisFact]
    public async Task ANodeCutOffFromRedisAloneStillHearsEveryWakeUp()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(120);
        // Node 0 cannot reach its Redis (nothing listens there) and executes nothing; node 1 has Redis and executes every run.
        await using var nowhere = await RedisTestServer.StartPrivateAsync(ct);
        nowhere.Stop();
        var cluster = Shared;
        var nodes = await ClusterTests.StartNodesAsync(database, "00:00:00.005", cluster, ct,
            new() { ["Apex__Limits__MaxConcurrentRunsPerNode"] = "0", ["Apex__Redis__Configuration"] = nowhere.Configuration }, null);
        try
        {
            Assert.Equal("unreachable", (await ReadyAsync(nodes[0], ct))["redis"]);
            // Node 1 hears node 0 say so over NOTIFY, and sends its wake-ups as NOTIFY while it does.
            await SignalsAsync(nodes, "notify", ct);
            Assert.Equal("connected", (await ReadyAsync(nodes[1], ct))["redis"]);

            using var client = nodes[0].CreateClient();
            await client.RegisterAsync($"alone-{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
            using var socket = await client.ConnectAsync(ct);
            for (var i = 0; i < 3; i++)
            {
                var events = await socket.RunToEndAsync($"question {i}", cancellationToken: ct);
                Assert.IsType<RunCompleted>(events[^1]);
                Assert.Contains($"-{nodes[1].ProcessId}-", events.OfType<RunStarted>().Single().Data.NodeId, StringComparison.Ordinal);
            }
        }
        finally
        {
            foreach (var node in nodes) await node.DisposeAsync();
        }
    }

    private static async Task<Dictionary<string, string>> ReadyAsync(ServerProcess node, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = node.BaseAddress };
        using var response = await http.GetAsync(new Uri("readyz", UriKind.Relative), ct);
        response.EnsureSuccessStatusCode();
        return JsonSerializer.Deserialize<Dictionary<string, string>>(await response.Content.ReadAsStringAsync(ct))!;
    }

    /// <summary>Until every node's <c>/readyz</c> says its wake-ups travel by <paramref name="carrier"/>.</summary>
    private static async Task SignalsAsync(ServerProcess[] nodes, string carrier, CancellationToken ct)
    {
        foreach (var node in nodes)
            while ((await ReadyAsync(node, ct))["signals"] != carrier) await Task.Delay(50, ct);
    }

    private static async Task<long> EndedRunsAsync(PostgresTestDatabase database, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync(ct);
        await using var command = new NpgsqlCommand("SELECT count(*) FROM runs WHERE status IN ('completed', 'failed', 'cancelled')", connection);
        return (long)(await command.ExecuteScalarAsync(ct))!;
    }

    /// <summary>Until the cluster has ended <paramref name="count"/> runs (or the load is over: then the test fails at its asserts).</summary>
    private static async Task RunsEndedAsync(PostgresTestDatabase database, long count, Task load, CancellationToken ct)
    {
        while (!load.IsCompleted && await EndedRunsAsync(database, ct) < count) await Task.Delay(100, ct);
        Assert.False(load.IsCompleted, "the load ended before Redis was stopped and started again");
    }

    private static async Task<ClientWebSocket> OpenAsync(Uri server, string ticket, CancellationToken ct)
    {
        var socket = new ClientWebSocket();
        await socket.ConnectAsync(new UriBuilder(new Uri(server, "ws")) { Scheme = "ws", Query = "ticket=" + Uri.EscapeDataString(ticket) }.Uri, ct);
        return socket;
    }

    /// <summary>Reads until the server closes the socket: its close status and reason.</summary>
    private static async Task<(WebSocketCloseStatus? Status, string? Reason)> ClosedAsync(ClientWebSocket socket, CancellationToken ct)
    {
        using (socket)
        {
            var buffer = new byte[8192];
            while ((await socket.ReceiveAsync(buffer, ct)).MessageType != WebSocketMessageType.Close)
            {
            }
            return (socket.CloseStatus, socket.CloseStatusDescription);
        }
    }

    private static async Task<(WebSocketCloseStatus? Status, string? Reason)> RefusedAsync(ApexClient client, Uri server, CancellationToken ct) =>
        await ClosedAsync(await OpenAsync(server, await client.GetWsTicketAsync(ct), ct), ct);

    /// <summary>The place of a closed socket is freed when its server has seen the close: a refusal before that is retried.</summary>
    private static async Task<ApexSocket> ConnectOnceFreedAsync(ApexClient client, Uri server, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await client.ConnectAsync(ct, server);
            }
            catch (InvalidOperationException) when (attempt < 50)
            {
                await Task.Delay(100, ct);
            }
        }
    }
}
