using System.Net;
using System.Net.Http.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Apex.Tests.Interop;

/// <summary>Apex as an MCP server at /mcp, driven by the MCP C# SDK's client over Streamable HTTP.</summary>
public sealed class McpServerTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApexTestServer Server => shared.Server;

    private async Task<McpClient> ConnectAsync(ApexClient user, CancellationToken ct, Steps? steps = null) =>
        await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(Server.BaseAddress, "mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + user.Tokens!.AccessToken },
        }), steps is null ? null : new McpClientOptions { Handlers = new McpClientHandlers { NotificationHandlers = [new(NotificationMethods.ProgressNotification, steps.OnNotification)] } },
            cancellationToken: ct);

    [Fact]
    public async Task AnMcpClientListsAndCallsApexsToolsOverItsOwnDataOnly()
    {
        var ct = Waits.Timeout();
        using var owner = await Server.NewUserAsync();
        using var sample = owner.Authorized(HttpMethod.Post, "api/workloads/sample", JsonContent.Create(new { days = 3, calls_per_day = 100 }));
        Assert.Equal(HttpStatusCode.OK, (await owner.Http.SendAsync(sample, ct)).StatusCode);
        using var stranger = await Server.NewUserAsync();

        await using var mcp = await ConnectAsync(owner, ct);
        var tools = await mcp.ListToolsAsync(cancellationToken: ct);
        Assert.Contains(tools, t => t.Name == "ask_apex");
        Assert.Contains(tools, t => t.Name == "workload_summary");

        var mine = await mcp.CallToolAsync("workload_summary", new Dictionary<string, object?>(), cancellationToken: ct);
        Assert.NotEqual(true, mine.IsError);
        Assert.Equal(300, Calls(mine));

        await using var theirs = await ConnectAsync(stranger, ct);
        var none = await theirs.CallToolAsync("workload_summary", new Dictionary<string, object?>(), cancellationToken: ct);
        Assert.Equal(0, Calls(none));

        // A pro tool on a free account is refused, not run.
        var denied = await theirs.CallToolAsync("anomalies", new Dictionary<string, object?>(), cancellationToken: ct);
        Assert.True(denied.IsError);
    }

    [Fact]
    public async Task AskApexRunsTheTeamAsAnOrdinaryRunWithProgressAndReturnsTheAnswer()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        var steps = new Steps();
        await using var mcp = await ConnectAsync(user, ct, steps);
        var result = await mcp.CallToolAsync("ask_apex", new Dictionary<string, object?> { ["question"] = "How do I cut my LLM costs?" },
            steps, cancellationToken: ct);

        Assert.False(result.IsError == true, string.Concat(result.Content.OfType<TextContentBlock>().Select(c => c.Text)));
        var text = ((TextContentBlock)result.Content[0]).Text;
        Assert.Contains("Getting started with your workload analysis", text, StringComparison.Ordinal);
        // The run is an ordinary one: stored on a thread of the user's, with its answer.
        var threads = await user.ListThreadsAsync(cancellationToken: ct);
        var thread = Assert.Single(threads.Items);
        var messages = await user.ListMessagesAsync(thread.Id, cancellationToken: ct);
        Assert.Equal(["user", "assistant"], messages.Items.Select(m => m.Role));
        Assert.StartsWith(messages.Items[1].Content.TrimEnd(), text, StringComparison.Ordinal);
        // Progress notifications were sent before the result, but the client may hand them over after it: wait for them.
        await steps.Triage.Task.WaitAsync(ct);
        Assert.Contains(steps.Seen(), s => s.StartsWith("triage", StringComparison.Ordinal));
    }

    /// <summary>
    /// Records each progress notification as the client receives it. Passed to the call, it makes the call carry a progress
    /// token; but the SDK's client handles each incoming message on its own task, so a notification can be handled after
    /// the call's result, when the call has already dropped its progress handler (seen in CI: the step never came). The
    /// session-wide handler (<see cref="OnNotification"/>, registered for the client's lifetime) sees every one, late or not:
    /// <see cref="Triage"/> completes when triage's step arrives.
    /// </summary>
    private sealed class Steps : IProgress<ProgressNotificationValue>
    {
        private readonly List<string> _seen = [];

        public TaskCompletionSource Triage { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Report(ProgressNotificationValue value) { }

        public ValueTask OnNotification(JsonRpcNotification notification, CancellationToken cancellationToken)
        {
            var message = notification.Params?["message"]?.GetValue<string>() ?? "";
            lock (_seen) _seen.Add(message);
            if (message.StartsWith("triage", StringComparison.Ordinal)) Triage.TrySetResult();
            return ValueTask.CompletedTask;
        }

        public List<string> Seen()
        {
            lock (_seen) return [.. _seen];
        }
    }

    private static long Calls(CallToolResult result)
    {
        using var json = System.Text.Json.JsonDocument.Parse(((TextContentBlock)result.Content[0]).Text);
        return json.RootElement.GetProperty("calls").GetInt64();
    }

    [Fact]
    public async Task TheOfficialTypeScriptClientListsCallsAndAsksApex()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        using var seen = await NodeScripts.RunAsync("mcp-client.mjs", "@modelcontextprotocol/sdk", [Server.BaseAddress.ToString(), user.Tokens!.AccessToken], ct);
        var root = seen.RootElement;
        Assert.Contains("ask_apex", root.GetProperty("tools").EnumerateArray().Select(t => t.GetString()));
        Assert.Contains("\"calls\": 0", root.GetProperty("summary").GetString(), StringComparison.Ordinal);
        Assert.False(root.GetProperty("isError").GetBoolean());
        Assert.Contains("Apex", root.GetProperty("answer").GetString(), StringComparison.Ordinal);
        Assert.NotEmpty(root.GetProperty("progress").EnumerateArray());
    }

    [Fact]
    public async Task McpWithoutATokenIsUnauthorized()
    {
        var ct = Waits.Timeout();
        using var http = new HttpClient { BaseAddress = Server.BaseAddress };
        using var response = await http.PostAsync("mcp", JsonContent.Create(new { jsonrpc = "2.0", id = 1, method = "tools/list" }), ct);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }
}
