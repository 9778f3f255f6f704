using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Runs;

public sealed class TimeoutAndShutdownTests
{
    [Fact]
    public async Task ATimedOutToolIsReportedAndTheRunEndsNormally()
    {
        await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Limits:ToolTimeout"] = "00:00:01" }, ScriptedChatClient.Register);
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("[slow] tool too slow", cancellationToken: ct);
        var sleep = Assert.Single(events.OfType<ToolCompleted>(), t => t.Data.Tool == "sleep");
        Assert.Equal("timeout", sleep.Data.Status);
        Assert.Contains("1 s", sleep.Data.Error, StringComparison.Ordinal);
        Assert.IsType<RunCompleted>(events[^1]);
    }

    [Fact]
    public async Task ATimedOutAgentGivesAgentErrorAndTheTeamStillReports()
    {
        await using var server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Limits:ToolTimeout"] = "00:00:01",
            ["Apex:Limits:AgentTimeout"] = "00:00:01",
        }, ScriptedChatClient.Register);
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("[stuck] triage hangs", cancellationToken: ct);
        var error = Assert.Single(events.OfType<AgentError>());
        Assert.Equal("triage", error.Data.Agent);
        Assert.Equal("timeout", error.Data.Code);
        Assert.Contains(events, e => e is AgentCompleted { Data: { Agent: "triage", Status: "error" } });
        Assert.Contains(events, e => e is AgentCompleted { Data: { Agent: "reporting", Status: "ok" } });
        Assert.IsType<RunCompleted>(events[^1]);
    }

    [Fact]
    public async Task ARunPastItsTimeLimitFailsWithTimeout()
    {
        await using var server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Limits:ToolTimeout"] = "00:00:01",
            ["Apex:Limits:AgentTimeout"] = "00:00:02",
            ["Apex:Limits:RunTimeout"] = "00:00:02",
        }, ScriptedChatClient.Register);
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        // Each agent's first model call takes 1.5 s: no agent reaches its 2 s limit, the run as a whole does.
        var events = await socket.RunToEndAsync("[stall] slow model", cancellationToken: ct);
        var failed = Assert.IsType<RunFailed>(events[^1]);
        Assert.Equal("timeout", failed.Data.Reason);
        Assert.Empty(events.OfType<AgentError>());
        Assert.Equal(events.OfType<AgentStarted>().Count(), events.OfType<AgentCompleted>().Count());
    }

    [Fact]
    public void InconsistentLimitsAreRefusedAtStartUp()
    {
        var error = Assert.ThrowsAny<Exception>(() => ApexTestServer.StartAsync(new()
        {
            ["Apex:Limits:RunTimeout"] = "00:10:00",
            ["Apex:Limits:SocketIdleTimeout"] = "00:05:00",
        }).GetAwaiter().GetResult());
        Assert.Contains("SocketIdleTimeout must outlive RunTimeout", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ShutdownDrainsThenCancelsActiveRunsHonestly()
    {
        var path = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");
        try
        {
            var ct = Waits.Timeout();
            string runId, threadId;
            TokenResponse tokens;
            await using (var server = await ApexTestServer.StartAsync(new() { ["Apex:Limits:DrainTimeout"] = "00:00:01" }, ScriptedChatClient.Register, databasePath: path))
            {
                using var client = await server.NewUserAsync();
                tokens = client.Tokens!;
                using var socket = await client.ConnectAsync(ct);
                await socket.SendMessageAsync("[slow] still working when the server stops", cancellationToken: ct);
                var executing = (await socket.ReceiveUntilAsync(e => e is ToolExecuting { Data.Tool: "sleep" }, ct))[^1];
                runId = executing.RunId!;
                threadId = executing.ThreadId!;
            }
            await using var restarted = await ApexTestServer.StartAsync(databasePath: path);
            using var again = restarted.CreateClient();
            await again.LoginAsync(tokens.User.Email, "correct horse battery", ct);
            var run = await again.GetRunAsync(runId, ct);
            Assert.Equal("cancelled", run.Status);
            Assert.Equal("server_shutdown", run.Error);
            var events = new List<ApexEvent>();
            await foreach (var evt in again.StreamEventsAsync(threadId, 0, cancellationToken: ct))
            {
                events.Add(evt);
                if (evt.IsTerminal) break;
            }
            Assert.Equal("server_shutdown", Assert.IsType<RunCancelled>(events[^1]).Data.Reason);
            Assert.Equal("cancelled", events.OfType<ToolCompleted>().Single(t => t.Data.Tool == "sleep").Data.Status);
        }
        finally
        {
            ApexTestServer.DeleteDatabase(path);
        }
    }
}
