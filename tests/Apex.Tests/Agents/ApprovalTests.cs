using System.Net;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Agents;

/// <summary>
/// Approval before a tool runs (issue 15, part 4): a user's agent whose definition marks a tool <c>approval: required</c>; the run
/// parks itself at that call and resumes when the person answers over REST or <c>/ws</c>, or when the approval times out.
/// </summary>
public sealed class ApprovalTests(SharedServer shared) : IClassFixture<SharedServer>
{
    /// <summary>The built-in model calls both tools in one round: workload_summary runs at once, cost_breakdown waits.</summary>
    internal const string Gated = """
        {"name":"gated","purpose":"Summing up and breaking down cost","instructions":"Sum up the workload, then break its cost down.",
         "tools":["workload_summary","cost_breakdown"],"approval":{"required":["cost_breakdown"]}}
        """;

    private ApexTestServer Server => shared.Server;

    /// <summary>A user with the gated agent, a socket, and a run of it parked at its cost_breakdown call.</summary>
    internal static async Task<(ApexClient User, ApexSocket Socket, List<ApexEvent> Events, ApprovalRequested Request)> ParkedRunAsync(ApexTestServer server, CancellationToken ct)
    {
        var user = await server.NewUserAsync();
        await user.CreateAgentAsync(Gated, ct);
        var socket = await user.ConnectAsync(ct);
        var (events, request) = await SendUntilParkedAsync(socket, ct);
        return (user, socket, events, request);
    }

    internal static async Task<(List<ApexEvent> Events, ApprovalRequested Request)> SendUntilParkedAsync(ApexSocket socket, CancellationToken ct, string? threadId = null)
    {
        await socket.SendAsync("user_message", new UserMessagePayload("what did my calls cost?", threadId, Agent: "gated"), ApexJsonContext.Default.UserMessagePayload, ct);
        var events = (await socket.ReceiveUntilAsync(e => e is ApprovalRequested || e.IsTerminal || e is ErrorFrame, ct)).Where(e => e.Seq > 0).ToList();
        return (events, Assert.IsType<ApprovalRequested>(events[^1]));
    }

    internal static async Task<List<ApexEvent>> UntilTerminalAsync(ApexSocket socket, CancellationToken ct) =>
        [.. (await socket.ReceiveUntilAsync(e => e.IsTerminal, ct)).Where(e => e.Seq > 0)];

    [Fact]
    public async Task AnApprovedCallRunsAfterTheRunWaitedWithoutAWorkerAndOnlyItsOwnerMayAnswer()
    {
        var ct = Waits.Timeout();
        var (user, socket, parked, request) = await ParkedRunAsync(Server, ct);
        using var _ = user;
        using var __ = socket;
        // The call before it in the same round ran; the one that waits did not start; the request names the tool, its arguments and who may answer.
        Assert.Equal(["workload_summary"], parked.OfType<ToolCompleted>().Select(t => t.Data.Tool));
        Assert.DoesNotContain(parked.OfType<ToolExecuting>(), t => t.Data.Tool == "cost_breakdown");
        Assert.Equal(("cost_breakdown", "gated"), (request.Data.Tool, request.AgentName));
        Assert.Equal([user.Tokens!.User.Id], request.Data.Approvers);
        Assert.Equal(JsonValueKind.Object, request.Data.Arguments.ValueKind);
        Assert.InRange(request.Data.ExpiresAt, DateTimeOffset.UtcNow.AddHours(23), DateTimeOffset.UtcNow.AddHours(25));
        var runId = request.RunId!;
        var run = await user.GetRunAsync(runId, ct);
        Assert.Equal("waiting", run.Status);
        var pending = Assert.Single(await user.ListApprovalsAsync(runId, ct));
        Assert.Equal(("pending", request.Data.CallId, "cost_breakdown"), (pending.Status, pending.CallId, pending.Tool));

        // Another user cannot see or answer it: the same 404 as a run that does not exist.
        using var other = await Server.NewUserAsync();
        var refused = await Assert.ThrowsAsync<ApexApiException>(() => other.ApproveToolAsync(runId, request.Data.CallId, cancellationToken: ct));
        Assert.Equal(HttpStatusCode.NotFound, refused.Status);
        Assert.Equal(HttpStatusCode.NotFound, (await Assert.ThrowsAsync<ApexApiException>(() => other.ListApprovalsAsync(runId, ct))).Status);
        Assert.Equal("waiting", (await user.GetRunAsync(runId, ct)).Status);

        var approved = await user.ApproveToolAsync(runId, request.Data.CallId, cancellationToken: ct);
        Assert.Equal(("approved", user.Tokens.User.Id), (approved.Status, approved.DecidedBy));
        var rest = await UntilTerminalAsync(socket, ct);
        var resolved = Assert.Single(rest.OfType<ApprovalResolved>());
        Assert.Equal(("approved", user.Tokens.User.Id, (JsonElement?)null), (resolved.Data.Status, resolved.Data.DecidedBy, resolved.Data.Arguments));
        Assert.Equal("ok", Assert.Single(rest.OfType<ToolCompleted>(), t => t.Data.Tool == "cost_breakdown").Data.Status);
        var completed = Assert.IsType<RunCompleted>(rest[^1]);
        // Everything it opened is closed once, across the wait: the supervisor and the agent.
        List<ApexEvent> all = [.. parked, .. rest];
        Assert.Equal(all.OfType<AgentStarted>().Select(a => a.Data.Agent).Order(), all.OfType<AgentCompleted>().Select(a => a.Data.Agent).Order());
        Assert.Equal(Enumerable.Range((int)all[0].Seq, all.Count).Select(i => (long)i), all.Select(e => e.Seq));
        var answer = (await user.ListMessagesAsync(completed.ThreadId!, cancellationToken: ct)).Items.Single(m => m.Role == "assistant").Content;
        Assert.Contains("Called 2 tools.", answer, StringComparison.Ordinal);
        Assert.Contains("cost_breakdown: {", answer, StringComparison.Ordinal);
        Assert.Equal("completed", (await user.GetRunAsync(runId, ct)).Status);

        // Answered once: a second answer is refused.
        var again = await Assert.ThrowsAsync<ApexApiException>(() => user.RejectToolAsync(runId, request.Data.CallId, cancellationToken: ct));
        Assert.Equal(HttpStatusCode.Conflict, again.Status);
    }

    [Fact]
    public async Task ARejectedCallEndsRejectedWithTheReasonAndTheModelIsTold()
    {
        var ct = Waits.Timeout();
        var (user, socket, _, request) = await ParkedRunAsync(Server, ct);
        using var __ = user;
        using var ___ = socket;
        await socket.RejectToolAsync(request.RunId!, request.Data.CallId, "too expensive to run now", ct);
        var accepted = Assert.IsType<ApprovalAccepted>((await socket.ReceiveUntilAsync(e => e is ApprovalAccepted || e is ErrorFrame, ct))[^1]);
        Assert.Equal((request.RunId, request.Data.CallId, "rejected"), (accepted.Data.RunId, accepted.Data.CallId, accepted.Data.Status));
        var rest = await UntilTerminalAsync(socket, ct);
        Assert.Equal(("rejected", "too expensive to run now"), (Assert.Single(rest.OfType<ApprovalResolved>()).Data.Status, rest.OfType<ApprovalResolved>().Single().Data.Reason));
        var closed = Assert.Single(rest.OfType<ToolCompleted>());
        Assert.Equal(("cost_breakdown", "rejected"), (closed.Data.Tool, closed.Data.Status));
        Assert.Contains("too expensive to run now", closed.Data.Error, StringComparison.Ordinal);
        Assert.DoesNotContain(rest, e => e is ToolExecuting);
        var completed = Assert.IsType<RunCompleted>(rest[^1]);
        // The model read the rejection (the built-in one quotes what each tool returned).
        var answer = (await user.ListMessagesAsync(completed.ThreadId!, cancellationToken: ct)).Items.Single(m => m.Role == "assistant").Content;
        Assert.Contains("cost_breakdown: failed (rejected): The user rejected", answer, StringComparison.Ordinal);
        Assert.Equal("rejected", Assert.Single(await user.ListApprovalsAsync(request.RunId!, ct)).Status);
    }

    [Fact]
    public async Task AnApproverCanEditTheArgumentsAndTheEditedOnesRun()
    {
        var ct = Waits.Timeout();
        var (user, socket, _, request) = await ParkedRunAsync(Server, ct);
        using var __ = user;
        using var ___ = socket;
        using var edited = JsonDocument.Parse("""{"group_by":"day"}""");
        // Not an object: refused, and the call still waits.
        using var bad = JsonDocument.Parse("[1]");
        await socket.ApproveToolAsync(request.RunId!, request.Data.CallId, bad.RootElement, ct);
        Assert.Equal("invalid_payload", Assert.IsType<ErrorFrame>((await socket.ReceiveUntilAsync(e => e is ErrorFrame or ApprovalAccepted, ct))[^1]).Data.Code);
        await socket.ApproveToolAsync(request.RunId!, request.Data.CallId, edited.RootElement, ct);
        var rest = await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);
        Assert.Contains(rest, e => e is ApprovalAccepted { Data.Status: "approved" });
        rest = [.. rest.Where(e => e.Seq > 0)];
        Assert.Equal("day", Assert.Single(rest.OfType<ApprovalResolved>()).Data.Arguments!.Value.GetProperty("group_by").GetString());
        Assert.Equal("day", Assert.Single(rest.OfType<ToolExecuting>()).Data.Arguments.GetProperty("group_by").GetString());
        var ran = Assert.Single(rest.OfType<ToolCompleted>());
        Assert.Equal(("ok", "day"), (ran.Data.Status, ran.Data.Result!.Value.GetProperty("group_by").GetString()));
        Assert.IsType<RunCompleted>(rest[^1]);
        var approval = Assert.Single(await user.ListApprovalsAsync(request.RunId!, ct));
        Assert.Equal("day", approval.EditedArguments!.Value.GetProperty("group_by").GetString());
    }

    [Fact]
    public async Task CancellingAWaitingRunEndsItAndItsApprovalAndTheThreadTakesTheNextMessage()
    {
        var ct = Waits.Timeout();
        var (user, socket, parked, request) = await ParkedRunAsync(Server, ct);
        using var __ = user;
        using var ___ = socket;
        // A message behind the waiting run waits its turn: the thread has one active run.
        var queued = await user.SendMessageAsync(request.ThreadId!, "and after that?", cancellationToken: ct);
        Assert.Equal(1, (await socket.ReceiveUntilAsync(e => e is RunQueued q && q.RunId == queued.Run.Id, ct)).OfType<RunQueued>().Last().Data.Position);
        Assert.Equal("queued", (await user.GetRunAsync(queued.Run.Id, ct)).Status);

        await socket.SendAsync("stop_agent", new StopAgentPayload(request.RunId!), ApexJsonContext.Default.StopAgentPayload, ct);
        var rest = (await socket.ReceiveUntilAsync(e => e is RunCancelled, ct)).Where(e => e.Seq > 0).ToList();
        Assert.Equal(("cancelled", "cancelled_by_user"), (Assert.Single(rest.OfType<ApprovalResolved>()).Data.Status, rest.OfType<ApprovalResolved>().Single().Data.Reason));
        Assert.Equal("cancelled_by_user", Assert.IsType<RunCancelled>(rest[^1]).Data.Reason);
        Assert.Equal(["gated", "supervisor"], rest.OfType<AgentCompleted>().Select(a => a.Data.Agent));
        Assert.All(rest.OfType<AgentCompleted>(), a => Assert.Equal("cancelled", a.Data.Status));
        Assert.DoesNotContain(rest, e => e is ToolExecuting or ToolCompleted);
        Assert.Equal("cancelled", (await user.GetRunAsync(request.RunId!, ct)).Status);
        Assert.Equal("cancelled", Assert.Single(await user.ListApprovalsAsync(request.RunId!, ct)).Status);
        Assert.Equal(HttpStatusCode.Conflict, (await Assert.ThrowsAsync<ApexApiException>(() => user.ApproveToolAsync(request.RunId!, request.Data.CallId, cancellationToken: ct))).Status);

        // The next message's run starts now (the shipped team answers it).
        Assert.IsType<RunCompleted>(await user.TerminalEventAsync(request.ThreadId!, queued.Run.Id, ct));
        Assert.NotEmpty(parked);
    }

    [Fact]
    public async Task TwoCallsOfOneRoundThatNeedApprovalAreAskedOneAfterTheOtherAndNeitherRunsUnasked()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        await user.CreateAgentAsync("""
            {"name":"gated","instructions":"Sum up the workload, then break its cost down.","tools":["workload_summary","cost_breakdown"],
             "approval":{"required":["workload_summary","cost_*"]}}
            """, ct);
        using var socket = await user.ConnectAsync(ct);
        var (first, asked) = await SendUntilParkedAsync(socket, ct);
        Assert.Equal("workload_summary", asked.Data.Tool);
        Assert.DoesNotContain(first, e => e is ToolExecuting);

        await user.ApproveToolAsync(asked.RunId!, asked.Data.CallId, cancellationToken: ct);
        // The first runs; the second, deferred behind it in the same round, now asks in turn and the run parks again.
        var second = (await socket.ReceiveUntilAsync(e => e is ApprovalRequested || e.IsTerminal, ct)).Where(e => e.Seq > 0).ToList();
        var again = Assert.IsType<ApprovalRequested>(second[^1]);
        Assert.Equal("cost_breakdown", again.Data.Tool);
        Assert.Equal(["workload_summary"], second.OfType<ToolCompleted>().Select(t => t.Data.Tool));
        Assert.Equal("waiting", (await user.GetRunAsync(asked.RunId!, ct)).Status);
        Assert.Equal(["approved", "pending"], (await user.ListApprovalsAsync(asked.RunId!, ct)).Select(a => a.Status));

        await user.RejectToolAsync(again.RunId!, again.Data.CallId, cancellationToken: ct);
        var rest = await UntilTerminalAsync(socket, ct);
        Assert.Equal("rejected", Assert.Single(rest.OfType<ToolCompleted>()).Data.Status);
        Assert.IsType<RunCompleted>(rest[^1]);
        List<ApexEvent> all = [.. first, .. second, .. rest];
        Assert.Single(all, e => e is ToolExecuting);
        Assert.Equal(2, all.OfType<ApprovalResolved>().Count());
        Assert.Equal(all.OfType<AgentStarted>().Select(a => a.Data.Agent).Order(), all.OfType<AgentCompleted>().Select(a => a.Data.Agent).Order());
    }

    [Fact]
    public async Task ADefinitionThatAsksApprovalForAToolTheAgentDoesNotHaveIsRefusedWithTheField()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        foreach (var (approval, field) in new[]
        {
            ("""{"required":["anomalies"]}""", "approval.required[0]"),
            ("""{"required":["cost_breakdown","mcp__nowhere__*"]}""", "approval.required[1]"),
            ("""{"needed":["cost_breakdown"]}""", "approval.needed"),
            ("""["cost_breakdown"]""", "approval"),
        })
        {
            var json = $$"""{"name":"bad","instructions":"x","tools":["workload_summary","cost_breakdown"],"approval":{{approval}}}""";
            using var request = user.Authorized(HttpMethod.Post, "api/agents", new StringContent(json, Encoding.UTF8, "application/json"));
            using var response = await user.Http.SendAsync(request, ct);
            var body = await response.Content.ReadAsStringAsync(ct);
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{approval}: {response.StatusCode} {body}");
            Assert.Contains(field, body, StringComparison.Ordinal);
        }
        // A prefix that matches one of its tools is a valid whole-server rule.
        Assert.Equal(1, (await user.CreateAgentAsync("""{"name":"prefixed","instructions":"x","tools":["workload_summary","cost_breakdown"],"approval":{"required":["cost_*"]}}""", ct)).Version);
    }
}

/// <summary>A short approval timeout: nobody answers, and the call ends rejected (expired).</summary>
public sealed class ApprovalTimeoutTests
{
    [Fact]
    public async Task AnApprovalNobodyAnswersExpiresAndTheCallIsRejected()
    {
        var ct = Waits.Timeout();
        await using var server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Approvals:Timeout"] = "00:00:01",
            ["Apex:Limits:HeartbeatInterval"] = "00:00:00.200",
        });
        var (user, socket, _, request) = await ApprovalTests.ParkedRunAsync(server, ct);
        using var __ = user;
        using var ___ = socket;
        Assert.InRange(request.Data.ExpiresAt - request.Timestamp, TimeSpan.FromMilliseconds(900), TimeSpan.FromMilliseconds(1100));
        var rest = await ApprovalTests.UntilTerminalAsync(socket, ct);
        var resolved = Assert.Single(rest.OfType<ApprovalResolved>());
        Assert.Equal(("expired", (string?)null), (resolved.Data.Status, resolved.Data.DecidedBy));
        var closed = Assert.Single(rest.OfType<ToolCompleted>());
        Assert.Equal("rejected", closed.Data.Status);
        Assert.Contains("Nobody approved", closed.Data.Error, StringComparison.Ordinal);
        Assert.IsType<RunCompleted>(rest[^1]);
        Assert.Equal("expired", Assert.Single(await user.ListApprovalsAsync(request.RunId!, ct)).Status);
    }
}
