using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Apex.Tests.Runs;

public sealed class QueueAndCancelTests(ScriptedServer scripted, ITestOutputHelper output) : IClassFixture<ScriptedServer>
{
    private ApexTestServer Server => scripted.Server;

    private static async Task<ToolExecuting> WaitForSleepAsync(ApexSocket socket, CancellationToken ct) =>
        (ToolExecuting)(await socket.ReceiveUntilAsync(e => e is ToolExecuting { Data.Tool: "sleep" }, ct))[^1];

    [Fact]
    public async Task StopDuringATenSecondToolEndsTheRunPromptlyAndTheThreadRunsAgain()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        await socket.SendMessageAsync("[slow] how much do I spend?", cancellationToken: ct);
        var executing = await WaitForSleepAsync(socket, ct);

        var clock = Stopwatch.StartNew();
        await socket.SendAsync("stop_agent", new StopAgentPayload(executing.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);
        var rest = await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);
        clock.Stop();
        output.WriteLine($"stop_agent -> run_cancelled: {clock.Elapsed.TotalMilliseconds:0.0} ms");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"cancellation took {clock.Elapsed}");

        var cancelled = Assert.IsType<RunCancelled>(rest[^1]);
        Assert.Equal("cancelled_by_user", cancelled.Data.Reason);
        var tool = Assert.Single(rest.OfType<ToolCompleted>(), t => t.Data.CallId == executing.Data.CallId);
        Assert.Equal("cancelled", tool.Data.Status);
        // Everything opened was closed before the terminal event.
        Assert.Contains(rest, e => e is AgentCompleted { Data: { Agent: "triage", Status: "cancelled" } });
        Assert.Contains(rest, e => e is AgentCompleted { Data: { Agent: "supervisor", Status: "cancelled" } });
        Assert.Equal("cancelled", (await client.GetRunAsync(executing.RunId!, ct)).Status);

        var next = await socket.RunToEndAsync("and now?", executing.ThreadId, ct);
        Assert.IsType<RunCompleted>(next[^1]);
        var messages = await client.ListMessagesAsync(executing.ThreadId!, cancellationToken: ct);
        Assert.Equal(["user", "user", "assistant"], messages.Items.Select(m => m.Role));
    }

    [Fact]
    public async Task CancelOverRestIsIdempotentAndAFinishedRunIsAConflict()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        await socket.SendMessageAsync("[slow] cancel me", cancellationToken: ct);
        var executing = await WaitForSleepAsync(socket, ct);

        using (var first = client.Authorized(HttpMethod.Post, $"api/runs/{executing.RunId}/cancel"))
            Assert.Equal(HttpStatusCode.Accepted, (await client.Http.SendAsync(first, ct)).StatusCode);
        await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);
        using (var again = client.Authorized(HttpMethod.Post, $"api/runs/{executing.RunId}/cancel"))
        {
            var response = await client.Http.SendAsync(again, ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("cancelled", (await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.RunDto, ct))!.Status);
        }
    }

    [Fact]
    public async Task EnqueueWaitsBehindTheActiveRunAndAPendingRunCanBeCancelledBeforeItStarts()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        await socket.SendMessageAsync("[slow] first", cancellationToken: ct);
        var active = await WaitForSleepAsync(socket, ct);
        var thread = active.ThreadId!;

        var second = await client.SendMessageAsync(thread, "second", cancellationToken: ct);
        var third = await client.SendMessageAsync(thread, "third", cancellationToken: ct);
        var queued = (await socket.ReceiveUntilAsync(e => e is RunQueued q && q.RunId == third.Run.Id, ct)).OfType<RunQueued>().ToList();
        Assert.Equal([1, 2], queued.Select(q => q.Data.Position));

        using (var cancelPending = client.Authorized(HttpMethod.Post, $"api/runs/{second.Run.Id}/cancel"))
            Assert.Equal(HttpStatusCode.OK, (await client.Http.SendAsync(cancelPending, ct)).StatusCode);
        var pendingCancelled = (RunCancelled)(await socket.ReceiveUntilAsync(e => e is RunCancelled c && c.RunId == second.Run.Id, ct))[^1];
        Assert.Equal("cancelled_by_user", pendingCancelled.Data.Reason);

        await socket.SendAsync("stop_agent", new StopAgentPayload(active.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);
        var rest = await socket.ReceiveUntilAsync(e => e.IsTerminal && e.RunId == third.Run.Id, ct);

        Assert.DoesNotContain(rest, e => e.RunId == second.Run.Id && e is RunStarted);
        var firstEnd = rest.FindIndex(e => e.RunId == active.RunId && e.IsTerminal);
        var thirdStart = rest.FindIndex(e => e.RunId == third.Run.Id && e is RunStarted);
        Assert.True(firstEnd >= 0 && thirdStart > firstEnd, "the queued run starts only after the active one ended");
        Assert.IsType<RunCompleted>(rest[^1]);
        Assert.Equal("cancelled", (await client.GetRunAsync(second.Run.Id, ct)).Status);
        Assert.Null((await client.GetRunAsync(second.Run.Id, ct)).StartedAt);
    }

    [Fact]
    public async Task RejectRefusesAMessageToABusyThread()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var thread = await client.CreateThreadAsync("strict", QueueStrategies.Reject, ct);
        using var socket = await client.ConnectAsync(ct);
        await socket.SendMessageAsync("[slow] busy", thread.Id, cancellationToken: ct);
        var active = await WaitForSleepAsync(socket, ct);

        await socket.SendMessageAsync("me too", thread.Id, cancellationToken: ct);
        var error = (ErrorFrame)(await socket.ReceiveUntilAsync(e => e is ErrorFrame, ct))[^1];
        Assert.Equal("thread_busy", error.Data.Code);
        var rest = Assert.IsType<ApexApiException>(await Record.ExceptionAsync(() => client.SendMessageAsync(thread.Id, "me too", cancellationToken: ct)));
        Assert.Equal(HttpStatusCode.Conflict, rest.Status);

        await socket.SendAsync("stop_agent", new StopAgentPayload(active.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);
        await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);
        Assert.Single((await client.ListRunsAsync(thread.Id, cancellationToken: ct)).Items);
    }

    [Fact]
    public async Task InterruptCancelsTheActiveRunThenStarts()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        await socket.SendMessageAsync("[slow] long", cancellationToken: ct);
        var active = await WaitForSleepAsync(socket, ct);

        await socket.SendMessageAsync("never mind, this instead", active.ThreadId, QueueStrategies.Interrupt, ct);
        var events = await socket.ReceiveUntilAsync(e => e is RunCompleted, ct);
        var interrupted = Assert.Single(events.OfType<RunCancelled>());
        Assert.Equal(active.RunId, interrupted.RunId);
        Assert.Equal("interrupted", interrupted.Data.Reason);
        var completed = events.OfType<RunCompleted>().Single();
        Assert.NotEqual(active.RunId, completed.RunId);
        Assert.True(events.IndexOf(interrupted) < events.FindIndex(e => e is RunStarted && e.RunId == completed.RunId));
    }

    [Fact]
    public async Task AnAgentResultOutsideItsSchemaIsAnErrorAndTheTeamStillReports()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("[badresult] classify me", cancellationToken: ct);
        var error = Assert.Single(events.OfType<AgentError>());
        Assert.Equal(("triage", "invalid_result"), (error.Data.Agent, error.Data.Code));
        Assert.Contains("'entities' is required", error.Data.Message, StringComparison.Ordinal);
        Assert.Equal(["supervisor", "triage", "data_helper", "reporting"], events.OfType<AgentStarted>().Select(a => a.Data.Agent));
        Assert.IsType<RunCompleted>(events[^1]);

        // The run keeps the results that did match their schemas, and only those.
        var run = await client.GetRunAsync(events[0].RunId!, ct);
        Assert.False(run.Results!.Value.TryGetProperty("triage", out _));
        Assert.Equal("no_data", run.Results.Value.GetProperty("data_helper").GetProperty("status").GetString());
    }
}
