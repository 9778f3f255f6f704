using System.Diagnostics;
using Apex.Client;
using Apex.Server.Mcp;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Apex.Tests.Mcp;

/// <summary>A real MCP server from the npm registry (@modelcontextprotocol/server-everything, over stdio) as the agents' tools.</summary>
public sealed class McpToolTests
{
    private static string EverythingServer =>
        Environment.GetEnvironmentVariable("APEX_TEST_MCP_EVERYTHING") is { } path && File.Exists(path)
            ? path
            : throw new InvalidOperationException("APEX_TEST_MCP_EVERYTHING is not set: run the tests with scripts/test.sh, which installs the MCP server.");

    private static Task<ApexTestServer> StartAsync() => ApexTestServer.StartAsync(new()
    {
        ["Apex:Mcp:Servers:everything:Command"] = "node",
        ["Apex:Mcp:Servers:everything:Args:0"] = EverythingServer,
        ["Apex:Mcp:Servers:everything:Args:1"] = "stdio",
        ["Apex:Mcp:Servers:everything:Agents:0"] = "triage",
    }, ScriptedChatClient.Register);

    [Fact]
    public async Task AnAgentCallsAToolOfARealMcpServerThroughTheDispatcher()
    {
        await using var server = await StartAsync();
        var ct = Waits.Timeout();
        await server.Services.GetRequiredService<McpToolSource>().Listed.WaitAsync(ct);
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("[mcp] say hello", cancellationToken: ct);

        var executing = Assert.Single(events.OfType<ToolExecuting>(), t => t.Data.Tool == "mcp__everything__echo");
        Assert.Equal("triage", executing.AgentName);
        var completed = Assert.Single(events.OfType<ToolCompleted>(), t => t.Data.CallId == executing.Data.CallId);
        Assert.Equal("ok", completed.Data.Status);
        Assert.Contains("hello from apex", completed.Data.Result!.Value.GetProperty("text").GetString(), StringComparison.Ordinal);
        Assert.IsType<RunCompleted>(events[^1]);
    }

    [Fact]
    public async Task ACrashedMcpServerAnswersErrorAtOnceThenIsRestarted()
    {
        await using var server = await StartAsync();
        var ct = Waits.Timeout();
        var source = server.Services.GetRequiredService<McpToolSource>();
        await source.Listed.WaitAsync(ct);
        // Every process of this server script goes (a previous test's may still be exiting): this server's is among them.
        var running = ChildProcessesRunning(EverythingServer);
        Assert.NotEmpty(running);
        foreach (var mcp in running)
        {
            try { mcp.Kill(); } catch (InvalidOperationException) { /* it had already exited */ }
            await mcp.WaitForExitAsync(ct);
        }
        await WaitAsync(source, connected: false, ct);

        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var clock = Stopwatch.StartNew();
        var down = await socket.RunToEndAsync("[mcp] while it is down", cancellationToken: ct);
        var failed = Assert.Single(down.OfType<ToolCompleted>(), t => t.Data.Tool == "mcp__everything__echo");
        Assert.Equal("error", failed.Data.Status);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"the call to a dead MCP server took {clock.Elapsed}");

        // The source restarts it with back-off; then its tools work again.
        await WaitAsync(source, connected: true, ct);
        var back = await socket.RunToEndAsync("[mcp] once it is back", cancellationToken: ct);
        Assert.Equal("ok", Assert.Single(back.OfType<ToolCompleted>(), t => t.Data.Tool == "mcp__everything__echo").Data.Status);
    }

    [Fact]
    public async Task AnAgentCallsAToolOfAnMcpServerOverStreamableHttp()
    {
        // The remote MCP server is another Apex (its /mcp), reached with a bearer token of one of its users who has data.
        await using var remote = await ApexTestServer.StartAsync();
        var ct = Waits.Timeout();
        using var owner = await remote.NewUserAsync();
        using var sample = owner.Authorized(HttpMethod.Post, "api/workloads/sample", System.Net.Http.Json.JsonContent.Create(new { days = 2, calls_per_day = 50 }));
        (await owner.Http.SendAsync(sample, ct)).EnsureSuccessStatusCode();
        await using var server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Mcp:Servers:remote:Url"] = new Uri(remote.BaseAddress, "mcp").ToString(),
            ["Apex:Mcp:Servers:remote:Headers:Authorization"] = "Bearer " + owner.Tokens!.AccessToken,
            ["Apex:Mcp:Servers:remote:Agents:0"] = "triage",
        }, ScriptedChatClient.Register);
        await server.Services.GetRequiredService<McpToolSource>().Listed.WaitAsync(ct);
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("[mcphttp] what does the other server hold?", cancellationToken: ct);

        var completed = Assert.Single(events.OfType<ToolCompleted>(), t => t.Data.Tool == "mcp__remote__workload_summary");
        Assert.Equal("ok", completed.Data.Status);
        using var summary = System.Text.Json.JsonDocument.Parse(completed.Data.Result!.Value.GetProperty("text").GetString()!);
        Assert.Equal(100, summary.RootElement.GetProperty("calls").GetInt64());
    }

    private static async Task WaitAsync(McpToolSource source, bool connected, CancellationToken ct)
    {
        while (true)
        {
            var next = source.NextChangeAsync();
            if (source.ClientFor("everything") is not null == connected) return;
            await next.WaitAsync(ct);
        }
    }

    private static List<Process> ChildProcessesRunning(string script) =>
        [.. Process.GetProcesses().Where(p =>
        {
            try { return File.ReadAllText($"/proc/{p.Id}/cmdline").Contains(script, StringComparison.Ordinal); }
            catch (IOException) { return false; }
            catch (UnauthorizedAccessException) { return false; }
        })];
}
