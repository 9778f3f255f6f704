using System.Net;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Interop;

/// <summary>The AG-UI door at /api/agui, driven by @ag-ui/client's HttpAgent (which verifies the events with @ag-ui/core's schemas and order rules).</summary>
public sealed class AgUiTests(ScriptedServer shared) : IClassFixture<ScriptedServer>
{
    private ApexTestServer Server => shared.Server;

    private Task<JsonDocument> RunClientAsync(ApexClient user, string message, string? threadId, string? abortAfter, CancellationToken ct) =>
        NodeScripts.RunAsync("agui-client.mjs", "@ag-ui/client", [Server.BaseAddress.ToString(), user.Tokens!.AccessToken, message, threadId ?? "", abortAfter ?? ""], ct);

    [Fact]
    public async Task TheAgUiClientRunsAMessageAndReceivesTheEventsInTheProtocolsOrder()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        using var seen = await RunClientAsync(user, "How do I cut my LLM costs?", null, null, ct);
        var root = seen.RootElement;
        Assert.True(root.GetProperty("error").ValueKind == JsonValueKind.Null, root.GetProperty("error").ToString());
        Assert.Empty(root.GetProperty("invalid").EnumerateArray());
        var types = root.GetProperty("types").EnumerateArray().Select(t => t.GetString()!).ToList();
        Assert.Equal("RUN_STARTED", types[0]);
        Assert.Equal("RUN_FINISHED", types[^1]);
        foreach (var type in new[] { "STEP_STARTED", "STEP_FINISHED", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END", "TOOL_CALL_RESULT",
                     "REASONING_START", "REASONING_MESSAGE_CONTENT", "REASONING_END", "TEXT_MESSAGE_CONTENT", "CUSTOM" })
            Assert.Contains(type, types);
        Assert.True(types.IndexOf("TEXT_MESSAGE_START") < types.IndexOf("TEXT_MESSAGE_CONTENT"));
        Assert.True(types.IndexOf("TOOL_CALL_START") < types.IndexOf("TOOL_CALL_RESULT"));
        Assert.True(types.LastIndexOf("TEXT_MESSAGE_CONTENT") < types.IndexOf("TEXT_MESSAGE_END"));
        Assert.Equal(types.Count(t => t == "STEP_STARTED"), types.Count(t => t == "STEP_FINISHED"));

        // RUN_STARTED carries the Apex ids: a new thread of the user's (the client's own thread id was unknown), holding an ordinary run.
        var threadId = root.GetProperty("started").GetProperty("threadId").GetString()!;
        var runId = root.GetProperty("started").GetProperty("runId").GetString()!;
        Assert.NotEqual("client-chosen-thread", threadId);
        Assert.Equal(RunStatus.Completed, (await user.GetRunAsync(runId, ct)).Status);
        var messages = await user.ListMessagesAsync(threadId, cancellationToken: ct);
        Assert.Equal(["user", "assistant"], messages.Items.Select(m => m.Role));
        var answer = root.GetProperty("answer").GetString()!;
        Assert.Contains("Getting started with your workload analysis", answer, StringComparison.Ordinal);
        Assert.Equal(messages.Items[1].Content, answer);
    }

    [Fact]
    public async Task AbortingTheAgUiClientMidRunCancelsTheApexRun()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        // [slow] makes triage call a 10-second tool: the client aborts when that call starts.
        using var seen = await RunClientAsync(user, "[slow] how much do I spend?", null, "TOOL_CALL_START", ct);
        var root = seen.RootElement;
        Assert.True(root.GetProperty("aborted").GetBoolean());
        Assert.DoesNotContain("RUN_FINISHED", root.GetProperty("types").EnumerateArray().Select(t => t.GetString()));
        var threadId = root.GetProperty("started").GetProperty("threadId").GetString()!;
        var runId = root.GetProperty("started").GetProperty("runId").GetString()!;

        var cancelled = Assert.IsType<RunCancelled>(await user.TerminalEventAsync(threadId, runId, ct));
        Assert.Equal("client_aborted", cancelled.Data.Reason);
        Assert.Equal(RunStatus.Cancelled, (await user.GetRunAsync(runId, ct)).Status);
    }

    [Fact]
    public async Task AnotherUsersThreadIsNotReachableThroughAgUi()
    {
        var ct = Waits.Timeout();
        using var owner = await Server.NewUserAsync();
        using var stranger = await Server.NewUserAsync();
        var first = await PostAsync(owner, null, "Hello", ct);
        var ownersThread = first.Started.ThreadId;

        // The owner goes on with the thread by its id.
        var again = await PostAsync(owner, ownersThread, "And what can you tell me about latency?", ct);
        Assert.Equal(ownersThread, again.Started.ThreadId);
        Assert.Equal(4, (await owner.ListMessagesAsync(ownersThread, cancellationToken: ct)).Items.Count);

        // The stranger, signed in with an API key of their own (a key is a bearer here as anywhere), naming it gets a new thread of their own; the owner's thread gets no message and no run.
        stranger.UseApiKey((await stranger.CreateApiKeyAsync("door", cancellationToken: ct)).Key);
        var theirs = await PostAsync(stranger, ownersThread, "Hello", ct);
        Assert.NotEqual(ownersThread, theirs.Started.ThreadId);
        Assert.Equal("RUN_FINISHED", theirs.Types[^1]);
        Assert.Equal(theirs.Started.ThreadId, Assert.Single((await stranger.ListThreadsAsync(cancellationToken: ct)).Items).Id);
        Assert.Equal(4, (await owner.ListMessagesAsync(ownersThread, cancellationToken: ct)).Items.Count);
        Assert.Equal(2, (await owner.ListRunsAsync(ownersThread, cancellationToken: ct)).Items.Count);
    }

    [Fact]
    public async Task AgUiWithoutATokenIsUnauthorized()
    {
        using var http = new HttpClient { BaseAddress = Server.BaseAddress };
        using var body = new StringContent("""{"threadId":"t","runId":"r","messages":[{"id":"1","role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync(new Uri("api/agui", UriKind.Relative), body, Waits.Timeout())).StatusCode);
    }

    private sealed record Streamed(AgUiRunStarted Started, List<string> Types);

    /// <summary>Posts a RunAgentInput with plain HTTP and reads the SSE stream to its end.</summary>
    private static async Task<Streamed> PostAsync(ApexClient user, string? threadId, string message, CancellationToken ct)
    {
        var input = new AgUiRunAgentInput(threadId ?? "unknown-to-apex", "r1", [new AgUiMessage("m1", "user", JsonSerializer.SerializeToElement(message, ApexJsonContext.Default.String))]);
        using var request = user.Authorized(HttpMethod.Post, "api/agui", new StringContent(JsonSerializer.Serialize(input, ApexJsonContext.Default.AgUiRunAgentInput), Encoding.UTF8, "application/json"));
        using var response = await user.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<AgUiEvent>();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(ct));
        while (await reader.ReadLineAsync(ct) is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(JsonSerializer.Deserialize(line["data: ".Length..], ApexJsonContext.Default.AgUiEvent)!);
        return new Streamed(Assert.IsType<AgUiRunStarted>(events[0]), [.. events.Select(TypeOf)]);
    }

    private static string TypeOf(AgUiEvent evt) => evt switch
    {
        AgUiRunStarted => "RUN_STARTED",
        AgUiRunFinished => "RUN_FINISHED",
        AgUiRunError => "RUN_ERROR",
        _ => evt.GetType().Name,
    };
}
