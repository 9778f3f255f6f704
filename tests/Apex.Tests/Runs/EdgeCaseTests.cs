using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Runs;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Apex.Tests.Runs;

/// <summary>Defects found by reading and probing: each test failed before its fix.</summary>
public sealed class EdgeCaseTests(ScriptedServer scripted) : IClassFixture<ScriptedServer>
{
    private ApexTestServer Server => scripted.Server;

    [Fact]
    public async Task AFirstTokenCheckThatIsCancelledDoesNotLockEveryoneOut()
    {
        await using var server = await ApexTestServer.StartAsync();
        var ct = Waits.Timeout();
        var tokens = server.Services.GetRequiredService<TokenService>();
        // A well-formed token signed with another key, checked by a request that has already hung up: this used to start
        // (and cache, cancelled) the one load of the signing key.
        var foreign = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "apex",
            Claims = new Dictionary<string, object> { ["sub"] = "u", ["sid"] = "s", ["tier"] = "free" },
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(new byte[64]), SecurityAlgorithms.HmacSha256),
        });
        using var hungUp = new CancellationTokenSource();
        await hungUp.CancelAsync();
        try
        {
            var (user, failure) = await tokens.ValidateAsync(foreign, null, hungUp.Token);
            Assert.Null(user);
            Assert.Equal("invalid signature", failure);
        }
        catch (OperationCanceledException)
        {
            // acceptable for the aborted request itself; what matters is everyone after it
        }

        using var client = await server.NewUserAsync();
        Assert.Equal(client.Tokens!.User.Id, (await client.MeAsync(ct)).Id);
        using var socket = await client.ConnectAsync(ct);
        Assert.NotNull(socket.Established);
    }

    [Fact]
    public async Task AnAgentTimeOutDuringAToolIsReportedAsTheToolsTimeoutNotACancel()
    {
        await using var server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Limits:ToolTimeout"] = "00:00:01",
            ["Apex:Limits:AgentTimeout"] = "00:00:01",
        }, ScriptedChatClient.Register);
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        // Triage thinks 0.4 s before it calls the tool, so its own 1 s limit runs out well before the tool's: with both
        // started in the same millisecond, either timer could fire first.
        var events = await socket.RunToEndAsync("[pause][slow] triage waits on a 10 s tool", cancellationToken: ct);

        var sleep = Assert.Single(events.OfType<ToolCompleted>(), t => t.Data.Tool == "sleep");
        Assert.Equal("timeout", sleep.Data.Status);
        Assert.Contains("triage agent's time limit", sleep.Data.Error, StringComparison.Ordinal);
        Assert.Contains(events, e => e is AgentError { Data: { Agent: "triage", Code: "timeout" } });
        Assert.IsType<RunCompleted>(events[^1]);

        using var request = client.Authorized(HttpMethod.Get, "api/usage/tools?limit=200");
        var log = await (await client.Http.SendAsync(request, ct)).Content.ReadFromJsonAsync(ApexJsonContext.Default.PageToolUsageDto, ct);
        Assert.Equal("timeout", Assert.Single(log!.Items, u => u.Tool == "sleep").Status);
    }

    [Fact]
    public async Task StopDuringAToolThatIgnoresItsTokenEndsTheRunAtOnce()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        await socket.SendMessageAsync("[stubborn] a tool that does not listen", cancellationToken: ct);
        var executing = (ToolExecuting)(await socket.ReceiveUntilAsync(e => e is ToolExecuting { Data.Tool: "stubborn" }, ct))[^1];

        var clock = Stopwatch.StartNew();
        await socket.SendAsync("stop_agent", new StopAgentPayload(executing.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);
        var rest = await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);
        clock.Stop();

        // The tool sleeps 10 s; the run must not wait for it.
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"the cancel waited {clock.Elapsed} for a tool that ignores its token");
        Assert.IsType<RunCancelled>(rest[^1]);
        Assert.Equal("cancelled", Assert.Single(rest.OfType<ToolCompleted>(), t => t.Data.CallId == executing.Data.CallId).Data.Status);
        var next = await socket.RunToEndAsync("and now?", executing.ThreadId, ct);
        Assert.IsType<RunCompleted>(next[^1]);
    }

    [Fact]
    public async Task ACancelThatArrivesBeforeTheClaimedRunIsRegisteredStillStopsIt()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        await socket.SendMessageAsync("[stuck] the first run holds the thread", cancellationToken: ct);
        var first = (RunStarted)(await socket.ReceiveUntilAsync(e => e is RunStarted, ct))[^1];
        var second = await client.SendMessageAsync(first.ThreadId!, "queued behind it", cancellationToken: ct);

        // The cancel reaches this node while the run is not registered here (as between a claim and its registration).
        Assert.False(Server.Services.GetRequiredService<RunWorker>().TryCancelLocal(second.Run.Id, "cancelled_by_user"));
        await socket.SendAsync("stop_agent", new StopAgentPayload(first.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);

        var events = await socket.ReceiveUntilAsync(e => e is { IsTerminal: true } && e.RunId == second.Run.Id, ct);
        var cancelled = Assert.IsType<RunCancelled>(events[^1]);
        Assert.Equal("cancelled_by_user", cancelled.Data.Reason);
        Assert.Equal(RunStatus.Cancelled, (await client.GetRunAsync(second.Run.Id, ct)).Status);
    }

    [Fact]
    public async Task StopAgentIsAcknowledgedToASocketThatDoesNotFollowTheThread()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var runner = await client.ConnectAsync(ct);
        await runner.SendMessageAsync("[slow] long", cancellationToken: ct);
        var executing = (ToolExecuting)(await runner.ReceiveUntilAsync(e => e is ToolExecuting { Data.Tool: "sleep" }, ct))[^1];

        using var remote = await client.ConnectAsync(ct);
        await remote.SendAsync("stop_agent", new StopAgentPayload(executing.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);
        var ack = Assert.IsType<StopAccepted>(await remote.ReceiveAsync(ct));
        Assert.Equal((executing.RunId, executing.ThreadId, "cancelling"), (ack.Data.RunId, ack.Data.ThreadId, ack.Data.Status));
        Assert.IsType<RunCancelled>((await runner.ReceiveUntilAsync(e => e.IsTerminal, ct))[^1]);

        // A second stop of the cancelled run is acknowledged as over.
        await remote.SendAsync("stop_agent", new StopAgentPayload(executing.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);
        Assert.Equal("cancelled", Assert.IsType<StopAccepted>(await remote.ReceiveAsync(ct)).Data.Status);
    }

    [Fact]
    public async Task DeletingAThreadCancelsItsRunsFirstAndRemovesItsUsageRows()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var done = await socket.RunToEndAsync("a first, finished run");
        var threadId = done[^1].ThreadId!;
        await socket.SendMessageAsync("[slow] then a long one", threadId, cancellationToken: ct);
        var executing = (ToolExecuting)(await socket.ReceiveUntilAsync(e => e is ToolExecuting { Data.Tool: "sleep" }, ct))[^1];
        var queued = await client.SendMessageAsync(threadId, "and one waiting", cancellationToken: ct);
        Assert.NotEmpty(await ToolUsageAsync(client, ct));

        using var delete = client.Authorized(HttpMethod.Delete, $"api/threads/{threadId}");
        Assert.Equal(HttpStatusCode.NoContent, (await client.Http.SendAsync(delete, ct)).StatusCode);

        // The follower saw both runs end as cancelled for the deletion, the running one with its tool closed.
        var ended = new HashSet<string>();
        var rest = await socket.ReceiveUntilAsync(e => e.IsTerminal && ended.Add(e.RunId!) && ended.Count == 2, ct);
        var terminals = rest.Where(e => e.IsTerminal).ToList();
        Assert.All(terminals, t => Assert.Equal("thread_deleted", Assert.IsType<RunCancelled>(t).Data.Reason));
        Assert.Equal(new[] { executing.RunId, queued.Run.Id }.Order(), terminals.Select(t => t.RunId).Order());
        Assert.Contains(rest, e => e is ToolCompleted { Data.Status: "cancelled" } t && t.Data.CallId == executing.Data.CallId);
        Assert.Empty(await ToolUsageAsync(client, ct));
        var gone = await Assert.ThrowsAsync<ApexApiException>(() => client.GetRunAsync(queued.Run.Id, ct));
        Assert.Equal(HttpStatusCode.NotFound, gone.Status);
    }

    private static async Task<IReadOnlyList<ToolUsageDto>> ToolUsageAsync(ApexClient client, CancellationToken ct)
    {
        using var request = client.Authorized(HttpMethod.Get, "api/usage/tools?limit=200");
        return (await (await client.Http.SendAsync(request, ct)).Content.ReadFromJsonAsync(ApexJsonContext.Default.PageToolUsageDto, ct))!.Items;
    }
}

/// <summary>A deep queue on one thread: each run reads its own message, however many are queued behind it.</summary>
public sealed class DeepQueueTests(SharedServer shared) : IClassFixture<SharedServer>
{
    [Fact]
    public async Task TwentyMessagesQueuedAtOnceOnOneThreadAllComplete()
    {
        var ct = Waits.Timeout();
        using var client = await shared.Server.NewUserAsync();
        var thread = await client.CreateThreadAsync(cancellationToken: ct);
        var runs = new List<string>();
        for (var i = 0; i < 20; i++) runs.Add((await client.SendMessageAsync(thread.Id, $"question {i}: how do I cut costs?", cancellationToken: ct)).Run.Id);

        var ended = new Dictionary<string, ApexEvent>();
        await foreach (var evt in client.StreamEventsAsync(thread.Id, 0, cancellationToken: ct))
            if (evt.IsTerminal && ended.TryAdd(evt.RunId!, evt) && ended.Count == runs.Count) break;
        Assert.All(runs, id => Assert.IsType<RunCompleted>(ended[id]));
        var messages = await client.ListMessagesAsync(thread.Id, limit: 100, cancellationToken: ct);
        Assert.Equal(20, messages.Items.Count(m => m.Role == "assistant"));
    }
}
