using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Agents;

/// <summary>
/// A run that waits for an approval holds no process: the server that parked it can be killed (SIGKILL), and the answer given
/// to a new process on the same SQLite file, or to another node of a PostgreSQL cluster, resumes it there.
/// </summary>
public sealed class ApprovalDurabilityTests
{
    private static async Task<(ApexClient User, TokenResponse Tokens, ApprovalRequested Request)> ParkAsync(ServerProcess server, CancellationToken ct)
    {
        var user = server.CreateClient();
        var tokens = await user.RegisterAsync($"durable-{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
        await user.CreateAgentAsync(ApprovalTests.Gated, ct);
        using var socket = await user.ConnectAsync(ct);
        var (_, request) = await ApprovalTests.SendUntilParkedAsync(socket, ct);
        return (user, tokens, request);
    }

    /// <summary>Approves on <paramref name="server"/> and follows the thread there from its start to the run's terminal event.</summary>
    private static async Task<List<ApexEvent>> ApproveAndFollowAsync(ServerProcess server, TokenResponse tokens, ApprovalRequested request, CancellationToken ct)
    {
        using var user = server.CreateClient();
        await user.LoginAsync(tokens.User.Email, "correct horse battery", ct);
        Assert.Equal("waiting", (await user.GetRunAsync(request.RunId!, ct)).Status);
        using var socket = await user.ConnectAsync(ct);
        await socket.SendAsync("resume", new ResumePayload(request.ThreadId!, 0), ApexJsonContext.Default.ResumePayload, ct);
        Assert.IsType<ThreadFollowed>(await socket.ReceiveAsync(ct));
        Assert.Equal("approved", (await user.ApproveToolAsync(request.RunId!, request.Data.CallId, cancellationToken: ct)).Status);
        var events = (await socket.ReceiveUntilAsync(e => e.IsTerminal && e.RunId == request.RunId, ct)).Where(e => e.Seq > 0 && e.RunId == request.RunId).ToList();
        Assert.Equal("completed", (await user.GetRunAsync(request.RunId!, ct)).Status);
        return events;
    }

    private static void AssertResumedAndCompleted(List<ApexEvent> events, ApprovalRequested request)
    {
        Assert.Single(events, e => e.IsTerminal);
        Assert.IsType<RunCompleted>(events[^1]);
        Assert.Single(events, e => e is ApprovalRequested r && r.EventId == request.EventId);
        Assert.Equal("approved", Assert.Single(events.OfType<ApprovalResolved>()).Data.Status);
        Assert.Equal("ok", Assert.Single(events.OfType<ToolCompleted>(), t => t.Data.Tool == "cost_breakdown").Data.Status);
        Assert.DoesNotContain(events, e => e is RunFailed);
        Assert.Equal(events.OfType<AgentStarted>().Select(a => a.Data.Agent).Order(), events.OfType<AgentCompleted>().Select(a => a.Data.Agent).Order());
        Assert.Equal(Enumerable.Range((int)events[0].Seq, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
    }

    [Fact]
    public async Task AServerKilledWhileARunWaitsLeavesItWaitingAndTheApprovalGivenAfterTheRestartResumesIt()
    {
        var path = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var ct = Waits.Timeout(120);
        try
        {
            ApprovalRequested request;
            TokenResponse tokens;
            await using (var first = await ServerProcess.StartAsync(path, cancellationToken: ct))
            {
                var (user, t, r) = await ParkAsync(first, ct);
                (tokens, request) = (t, r);
                user.Dispose();
                first.Kill();
            }

            // The new process ends every run the dead one left running (server_restart): not the one that waits.
            await using var second = await ServerProcess.StartAsync(path, cancellationToken: ct);
            AssertResumedAndCompleted(await ApproveAndFollowAsync(second, tokens, request, ct), request);
        }
        finally
        {
            ApexTestServer.DeleteDatabase(path);
        }
    }

    [Fact]
    public async Task OnPostgresTheNodeThatParkedTheRunIsKilledAndTheApprovalOnAnotherNodeResumesItThere()
    {
        await using var database = await PostgresTestDatabase.CreateAsync();
        var ct = Waits.Timeout(180);
        var environment = new Dictionary<string, string>
        {
            ["Apex__Storage__Provider"] = "postgres",
            ["Apex__Llm__BuiltInDelay"] = "00:00:00.200",
            ["Apex__Limits__RunLease"] = "00:00:03",
            ["Apex__Limits__HeartbeatInterval"] = "00:00:01",
        };
        // Node A alone runs the agent up to its approval (so A is the node that held it), then node B joins.
        var a = await ServerProcess.StartAsync(database.ConnectionString, environment, ct);
        ServerProcess? b = null;
        try
        {
            ApexClient user;
            TokenResponse tokens;
            ApprovalRequested request;
            try
            {
                (user, tokens, request) = await ParkAsync(a, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The node's own log says why its run did not park.
                throw new InvalidOperationException(string.Join("\n", a.Output), ex);
            }
            using var _ = user;
            b = await ServerProcess.StartAsync(database.ConnectionString, environment, ct);
            // A second run, on another thread, is mid-flight on A when A dies: B ends it as node_lost once its lease runs out.
            using var socket = await user.ConnectAsync(ct);
            // Either node may claim it: until A does, a run B took is followed to its end and another is sent.
            RunStarted started;
            for (var attempt = 1; ; attempt++)
            {
                await socket.SendMessageAsync("analyse my workload", cancellationToken: ct);
                started = Assert.IsType<RunStarted>((await socket.ReceiveUntilAsync(e => e is RunStarted, ct))[^1]);
                if (started.Data.NodeId.Contains($"-{a.ProcessId}-", StringComparison.Ordinal)) break;
                Assert.True(attempt < 20, "node A claimed none of 20 runs");
                var runId = started.RunId;
                await socket.ReceiveUntilAsync(e => e.IsTerminal && e.RunId == runId, ct);
            }
            a.Kill();

            using (var onB = b.CreateClient())
            {
                onB.SignIn(tokens);
                using var watch = await onB.ConnectAsync(ct);
                await watch.SendAsync("resume", new ResumePayload(started.ThreadId!, started.Seq), ApexJsonContext.Default.ResumePayload, ct);
                Assert.Equal("node_lost", Assert.IsType<RunFailed>((await watch.ReceiveUntilAsync(e => e.IsTerminal, ct))[^1]).Data.Reason);
            }

            // B's recovery has run since A died; the waiting run is still waiting, and B resumes it when it is approved.
            AssertResumedAndCompleted(await ApproveAndFollowAsync(b, tokens, request, ct), request);
        }
        finally
        {
            await a.DisposeAsync();
            if (b is not null) await b.DisposeAsync();
        }
    }
}
