using System.ClientModel;
using System.Net;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Mcp;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;

namespace Apex.Tests.Agents;

/// <summary>One server with a real MCP server (@modelcontextprotocol/server-everything over stdio) and the built-in model; one admin.</summary>
public sealed class AgentServer : IAsyncLifetime
{
    public const string AdminEmail = "agents-admin@example.com";

    public ApexTestServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var everything = Environment.GetEnvironmentVariable("APEX_TEST_MCP_EVERYTHING") is { } path && File.Exists(path)
            ? path
            : throw new InvalidOperationException("APEX_TEST_MCP_EVERYTHING is not set: run the tests with scripts/test.sh, which installs the MCP server.");
        Server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Mcp:Servers:everything:Command"] = "node",
            // The same script by another spelling of its path: McpToolTests finds (and kills) its own MCP process by the path as
            // APEX_TEST_MCP_EVERYTHING spells it, and this class's must not be taken for it when the two classes run at once.
            ["Apex:Mcp:Servers:everything:Args:0"] = Path.Combine(Path.GetDirectoryName(everything)!, ".", Path.GetFileName(everything)),
            ["Apex:Mcp:Servers:everything:Args:1"] = "stdio",
            ["Apex:Mcp:Servers:everything:Agents:0"] = "triage",
            ["Apex:Auth:Admins:0"] = AdminEmail,
            // Every piece of an answer as its own event, as the benchmark's equal-work agent is measured (40 streamed tokens).
            ["Apex:Limits:MessageDeltaWindow"] = "00:00:00",
        });
        await Server.Services.GetRequiredService<McpToolSource>().Listed.WaitAsync(Waits.Timeout());
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>Users' own agents and teams as data (issue 15, parts 1 to 3): defined, validated, versioned, owner-scoped, named from every door.</summary>
public sealed class AgentDefinitionTests(AgentServer shared) : IClassFixture<AgentServer>
{
    private const string Echoer = """
        {"name":"echoer","purpose":"Echoing the request and reading the workload","instructions":"Echo the request, then say what data there is.",
         "tools":["workload_summary","mcp__everything__echo"]}
        """;

    private ApexTestServer Server => shared.Server;

    private static async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(ApexClient user, HttpMethod method, string path, string? json, CancellationToken ct)
    {
        using var request = user.Authorized(method, path, json is null ? null : new StringContent(json, Encoding.UTF8, "application/json"));
        using var response = await user.Http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        using var document = JsonDocument.Parse(text.Length == 0 ? "null" : text);
        return (response.StatusCode, document.RootElement.Clone());
    }

    private static async Task<string> CreateAsync(ApexClient user, string path, string json, CancellationToken ct)
    {
        var (status, body) = await SendAsync(user, HttpMethod.Post, path, json, ct);
        Assert.True(status == HttpStatusCode.Created, $"{status}: {body}");
        Assert.Equal(1, body.GetProperty("version").GetInt32());
        return body.GetProperty("id").GetString()!;
    }

    private static async Task<List<ApexEvent>> RunOnSocketAsync(ApexSocket socket, string content, string agent, CancellationToken ct)
    {
        await socket.SendAsync("user_message", new UserMessagePayload(content, Agent: agent), ApexJsonContext.Default.UserMessagePayload, ct);
        return [.. (await socket.ReceiveUntilAsync(e => e.IsTerminal || e is ErrorFrame, ct)).Where(e => e.Seq > 0 || e is ErrorFrame)];
    }

    private ChatClient Chat(ApexClient user, string model) =>
        new(model, new ApiKeyCredential(user.Tokens!.AccessToken), new OpenAIClientOptions { Endpoint = new Uri(Server.BaseAddress, "v1"), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) });

    [Fact]
    public async Task AUsersAgentWithABuiltInAndAnMcpToolAnswersFromEveryDoorAndNoOtherUserCanSeeOrUseIt()
    {
        var ct = Waits.Timeout();
        using var owner = await Server.NewUserAsync();
        using var other = await Server.NewUserAsync();
        var id = await CreateAsync(owner, "api/agents", Echoer, ct);

        // /ws, naming the agent by name: its own events (the supervisor runs it alone), both tools, the streamed answer.
        using var socket = await owner.ConnectAsync(ct);
        var events = await RunOnSocketAsync(socket, "hello from a user agent", "echoer", ct);
        var completed = Assert.IsType<RunCompleted>(events[^1]);
        Assert.Equal(["mcp__everything__echo", "workload_summary"], events.OfType<ToolCompleted>().Where(t => t.Data.Status == "ok").Select(t => t.Data.Tool).Order());
        Assert.All(events.OfType<ToolExecuting>(), t => Assert.Equal("echoer", t.AgentName));
        Assert.Contains(events.OfType<AgentStarted>(), a => a.AgentName == "echoer");
        Assert.DoesNotContain(events.OfType<AgentStarted>(), a => a.AgentName == "triage");
        Assert.True(events.OfType<MessageDelta>().Count(d => d.AgentName == "echoer") > 5, "the answer is streamed token by token");
        var answer = (await owner.ListMessagesAsync(completed.ThreadId!, cancellationToken: ct)).Items.Single(m => m.Role == "assistant").Content;
        Assert.Contains("Called 2 tools.", answer, StringComparison.Ordinal);
        Assert.Contains("mcp__everything__echo: Echo: hello from a user agent", answer, StringComparison.Ordinal);
        Assert.Equal((id, (int?)1), ((await owner.GetRunAsync(completed.RunId!, ct)).AgentId, (await owner.GetRunAsync(completed.RunId!, ct)).AgentVersion));

        // An edit is a new version, and the next run records it.
        var (putStatus, put) = await SendAsync(owner, HttpMethod.Put, $"api/agents/{id}", Echoer.Replace("Echoing", "Repeating", StringComparison.Ordinal), ct);
        Assert.Equal(HttpStatusCode.OK, putStatus);
        Assert.Equal(2, put.GetProperty("version").GetInt32());
        var thread = await owner.CreateThreadAsync(cancellationToken: ct);
        var sent = await SendAsync(owner, HttpMethod.Post, $"api/threads/{thread.Id}/messages", $$"""{"content":"again","agent":"{{id}}"}""", ct);
        Assert.Equal(HttpStatusCode.Accepted, sent.Status);
        var runId = sent.Body.GetProperty("run").GetProperty("id").GetString()!;
        Assert.IsType<RunCompleted>(await owner.TerminalEventAsync(thread.Id, runId, ct));
        Assert.Equal(2, (await owner.GetRunAsync(runId, ct)).AgentVersion);

        // /v1: the agent is a model, listed for its owner.
        var models = await SendAsync(owner, HttpMethod.Get, "v1/models", null, ct);
        var ids = models.Body.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Equal("apex", ids[0]);
        Assert.Contains("echoer", ids);
        var completion = (await Chat(owner, "echoer").CompleteChatAsync([new UserChatMessage("hi over openai")], cancellationToken: ct)).Value;
        Assert.Contains("Echo: hi over openai", completion.Content[0].Text, StringComparison.Ordinal);
        Assert.Equal("echoer", completion.Model);

        // AG-UI: forwardedProps.agent.
        using (var agui = owner.Authorized(HttpMethod.Post, "api/agui", new StringContent(
            """{"threadId":"","runId":"r1","messages":[{"id":"1","role":"user","content":"hi over ag-ui"}],"forwardedProps":{"agent":"echoer"}}""", Encoding.UTF8, "application/json")))
        using (var response = await owner.Http.SendAsync(agui, ct))
        {
            var stream = await response.Content.ReadAsStringAsync(ct);
            Assert.Contains("Echo: hi over ag-ui", stream, StringComparison.Ordinal);
            Assert.Contains("RUN_FINISHED", stream, StringComparison.Ordinal);
        }

        // Another user: not found by id or name, not listed, not usable from any door.
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(other, HttpMethod.Get, $"api/agents/{id}", null, ct)).Status);
        // (A shared agent of another test of this class may be listed: none of the owner's.)
        Assert.DoesNotContain((await SendAsync(other, HttpMethod.Get, "api/agents", null, ct)).Body.GetProperty("items").EnumerateArray(), a => a.GetProperty("id").GetString() == id);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(other, HttpMethod.Put, $"api/agents/{id}", Echoer, ct)).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(other, HttpMethod.Delete, $"api/agents/{id}", null, ct)).Status);
        var otherThread = await other.CreateThreadAsync(cancellationToken: ct);
        Assert.Equal(HttpStatusCode.NotFound, (await SendAsync(other, HttpMethod.Post, $"api/threads/{otherThread.Id}/messages", $$"""{"content":"x","agent":"{{id}}"}""", ct)).Status);
        using var otherSocket = await other.ConnectAsync(ct);
        var refused = Assert.IsType<ErrorFrame>(Assert.Single(await RunOnSocketAsync(otherSocket, "x", "echoer", ct)));
        Assert.Equal("not_found", refused.Data.Code);
        Assert.DoesNotContain("echoer", (await SendAsync(other, HttpMethod.Get, "v1/models", null, ct)).Body.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()));
        var wrongModel = await Assert.ThrowsAsync<ClientResultException>(() => Chat(other, "echoer").CompleteChatAsync([new UserChatMessage("x")], cancellationToken: ct));
        Assert.Equal(404, wrongModel.Status);
        Assert.Equal([otherThread.Id], (await other.ListThreadsAsync(cancellationToken: ct)).Items.Select(t => t.Id));

        // Deleted: no longer named; the shipped team still answers by default.
        Assert.Equal(HttpStatusCode.NoContent, (await SendAsync(owner, HttpMethod.Delete, $"api/agents/{id}", null, ct)).Status);
        var gone = Assert.IsType<ErrorFrame>(Assert.Single(await RunOnSocketAsync(socket, "x", "echoer", ct)));
        Assert.Equal("not_found", gone.Data.Code);
        var shipped = await socket.RunToEndAsync("hello", cancellationToken: ct);
        Assert.Contains(shipped.OfType<AgentStarted>(), a => a.AgentName == "triage");
        Assert.IsType<RunCompleted>(shipped[^1]);
    }

    [Fact]
    public async Task TheBenchmarksEqualWorkAgentMakesOneToolCallThenStreamsAboutFortyTokens()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        var definition = await File.ReadAllTextAsync(Path.Combine(BuildOutput.RepositoryRoot(), "bench", "agents", "react.json"), ct);
        Assert.Equal(1, (await user.CreateAgentAsync(definition, ct)).Version);
        using var socket = await user.ConnectAsync(ct);
        var events = await RunOnSocketAsync(socket, "How can I cut my LLM costs?", "react", ct);
        var completed = Assert.IsType<RunCompleted>(events[^1]);
        Assert.Equal("workload_summary", Assert.Single(events.OfType<ToolCompleted>()).Data.Tool);
        var deltas = events.OfType<MessageDelta>().ToList();
        var answer = string.Concat(deltas.Select(d => d.Data.Delta));
        Assert.InRange(deltas.Count, 30, 50);
        Assert.InRange((answer.Length + 3) / 4, 30, 50);
        Assert.Equal(answer, (await user.ListMessagesAsync(completed.ThreadId!, cancellationToken: ct)).Items.Single(m => m.Role == "assistant").Content);
    }

    [Fact]
    public async Task TheBuiltInModelFillsAnAgentsResultSchemaFromWhatItsToolReturned()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        await user.GenerateSampleWorkloadAsync(new SampleWorkloadRequest(Days: 2, CallsPerDay: 40), ct);
        await CreateAsync(user, "api/agents", """
            {"name":"counter","instructions":"Count the calls.","tools":["workload_summary"],
             "output_schema":{"type":"object","required":["calls","summary","tools"],"properties":{
               "calls":{"type":"integer"},"summary":{"type":"string"},"tools":{"type":"array","items":{"type":"string"}},"mood":{"type":"string","enum":["calm","busy"]}}}}
            """, ct);
        using var socket = await user.ConnectAsync(ct);
        var events = await RunOnSocketAsync(socket, "how many calls?", "counter", ct);
        Assert.IsType<RunCompleted>(events[^1]);
        var tool = Assert.Single(events.OfType<ToolCompleted>()).Data.Result!.Value;
        var result = Assert.Single(events.OfType<AgentCompleted>(), a => a.AgentName == "counter").Data;
        Assert.Equal("ok", result.Status);
        Assert.Equal(80, tool.GetProperty("calls").GetInt64());
        Assert.Equal(tool.GetProperty("calls").GetInt64(), result.Result!.Value.GetProperty("calls").GetInt64());
        Assert.StartsWith("Called 1 tool.", result.Result.Value.GetProperty("summary").GetString(), StringComparison.Ordinal);
        Assert.Single(result.Result.Value.GetProperty("tools").EnumerateArray());
        Assert.Equal("calm", result.Result.Value.GetProperty("mood").GetString());
    }

    [Fact]
    public async Task AnInvalidDefinitionIsRefusedWithTheFieldAtFault()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        async Task<JsonElement> RefusedAsync(string path, string json, string field)
        {
            var (status, body) = await SendAsync(user, HttpMethod.Post, path, json, ct);
            Assert.True(status == HttpStatusCode.BadRequest, $"{status}: {body}");
            var errors = body.GetProperty("errors");
            Assert.True(errors.TryGetProperty(field, out var messages), $"no error for {field}: {errors}");
            return messages;
        }

        Assert.Contains("no tool is named 'nope'", (await RefusedAsync("api/agents", """{"name":"a","instructions":"i","tools":["workload_summary","nope"]}""", "tools[1]"))[0].GetString(),
            StringComparison.Ordinal);
        Assert.Contains("offers no tool", (await RefusedAsync("api/agents", """{"name":"a","instructions":"i","tools":["mcp__everything__nope"]}""", "tools[0]"))[0].GetString(),
            StringComparison.Ordinal);
        Assert.Contains("does not parse", (await RefusedAsync("api/agents", """{"name":"a","instructions":"i","output_schema":"{\"type\": \"object\", "}""", "output_schema"))[0].GetString(),
            StringComparison.Ordinal);
        await RefusedAsync("api/agents", """{"name":"a","instructions":"i","output_schema":{"type":"objekt"}}""", "output_schema.type");
        await RefusedAsync("api/agents", """{"name":"a","instructions":"i","temperature":2}""", "temperature");
        await RefusedAsync("api/agents", """{"name":"Bad Name","instructions":"i"}""", "name");
        await RefusedAsync("api/agents", """{"name":"apex","instructions":"i"}""", "name");

        const string Triage = """{"name":"t","instructions":"triage","output_schema":{"type":"object","properties":{"mood":{"type":"string"}}}}""";
        const string Writer = """{"name":"w","instructions":"write"}""";
        // A cycle: an agent twice in one pipeline, or the triage agent again after itself.
        Assert.Contains("cycle", (await RefusedAsync("api/teams", $$$"""
            {"name":"loop","agents":[{{{Triage}}},{{{Writer}}}],"supervisor":{"policy":"router","triage":"t","fields":[{"name":"mood","default":"calm"}],
             "routes":[{"when":{"mood":"calm"},"then":["w","w"]}],"otherwise":["t"]}}
            """, "supervisor.routes[0].then[1]"))[0].GetString(), StringComparison.Ordinal);
        await RefusedAsync("api/teams", $$$"""{"name":"loop","agents":[{{{Triage}}},{{{Writer}}}],"supervisor":{"policy":"sequence","agents":["t","w","t"]}}""", "supervisor.agents[2]");
        // An unknown routing field: in a route, or one the triage agent's schema does not have.
        await RefusedAsync("api/teams", $$$"""
            {"name":"r","agents":[{{{Triage}}},{{{Writer}}}],"supervisor":{"policy":"router","triage":"t","fields":[{"name":"mood","default":"calm"}],
             "routes":[{"when":{"colour":"red"},"then":["w"]}],"otherwise":["w"]}}
            """, "supervisor.routes[0].when.colour");
        Assert.Contains("agent 't'", (await RefusedAsync("api/teams", $$$"""
            {"name":"r","agents":[{{{Triage}}},{{{Writer}}}],"supervisor":{"policy":"router","triage":"t","fields":[{"name":"colour","default":"red"}],"routes":[],"otherwise":["w"]}}
            """, "supervisor.fields[0].name"))[0].GetString(), StringComparison.Ordinal);
        await RefusedAsync("api/teams", $$$"""{"name":"r","agents":[{{{Writer}}},{"name":"x","instructions":"i","tools":["nope"]}],"supervisor":{"policy":"sequence"}}""", "agents[1].tools[0]");

        // Only an admin publishes a shared agent.
        var (status, _) = await SendAsync(user, HttpMethod.Post, "api/agents", """{"name":"house","instructions":"i","shared":true}""", ct);
        Assert.Equal(HttpStatusCode.Forbidden, status);
        Assert.DoesNotContain((await SendAsync(user, HttpMethod.Get, "api/agents", null, ct)).Body.GetProperty("items").EnumerateArray(), a => a.GetProperty("mine").GetBoolean());
    }

    [Fact]
    public async Task AUsersTeamRoutesOnItsTriageResultAndASharedAgentIsUsableByEveryoneButChangedOnlyByAdmins()
    {
        var ct = Waits.Timeout();
        using var user = await Server.NewUserAsync();
        await CreateAsync(user, "api/teams", """
            {"name":"duo","description":"Reads the data, then reports",
             "agents":[
               {"name":"reader","instructions":"Read the data.","tools":["workload_summary"],
                "output_schema":{"type":"object","properties":{"status":{"type":"string","enum":["empty","some"]},"calls":{"type":"integer"}}}},
               {"name":"empty_writer","instructions":"Say there is no data."},
               {"name":"writer","instructions":"Report.","tools":["mcp__everything__echo"]}],
             "supervisor":{"policy":"router","triage":"reader","fields":[{"name":"status","values":["empty","some"],"default":"some"}],
               "routes":[{"when":{"status":"empty"},"then":["empty_writer"]}],"otherwise":["writer"]}}
            """, ct);
        using var socket = await user.ConnectAsync(ct);
        var events = await RunOnSocketAsync(socket, "what is there?", "duo", ct);
        Assert.IsType<RunCompleted>(events[^1]);
        // The built-in reader fills status with the enum's first value, "empty": the route picks empty_writer, and says so.
        Assert.Equal(["supervisor", "reader", "empty_writer"], events.OfType<AgentStarted>().Select(a => a.AgentName));
        Assert.Contains(events.OfType<AgentThinking>(), t => t.AgentName == "supervisor" && t.Data.Text == "Status empty: empty_writer.");

        using var admin = await Server.NewUserAsync(AgentServer.AdminEmail);
        var shared = await CreateAsync(admin, "api/agents", """{"name":"house-echo","instructions":"Echo.","tools":["mcp__everything__echo"],"shared":true}""", ct);
        var listed = Assert.Single((await SendAsync(user, HttpMethod.Get, "api/agents", null, ct)).Body.GetProperty("items").EnumerateArray(), a => a.GetProperty("id").GetString() == shared);
        Assert.True(listed.GetProperty("shared").GetBoolean());
        Assert.False(listed.GetProperty("mine").GetBoolean());
        var answer = await RunOnSocketAsync(socket, "shared hello", "house-echo", ct);
        Assert.IsType<RunCompleted>(answer[^1]);
        Assert.Contains(answer.OfType<ToolCompleted>(), t => t.Data.Tool == "mcp__everything__echo" && t.Data.Status == "ok");
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(user, HttpMethod.Put, $"api/agents/{shared}", """{"name":"house-echo","instructions":"mine now"}""", ct)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await SendAsync(user, HttpMethod.Delete, $"api/agents/{shared}", null, ct)).Status);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(admin, HttpMethod.Put, $"api/agents/{shared}", """{"name":"house-echo","instructions":"Echo twice.","tools":["mcp__everything__echo"],"shared":true}""", ct)).Status);
    }
}

/// <summary>The shipped team's definition file is checked at start.</summary>
public sealed class TeamFileStartupTests
{
    [Fact]
    public async Task AnInvalidTeamFileEndsTheProcessWithOneLineNamingTheFileTheAgentAndTheField()
    {
        var ct = Waits.Timeout();
        var dll = BuildOutput.ProjectDll("Apex.Server", "Apex.Server.dll");
        var team = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + "-team.json");
        Directory.CreateDirectory(Path.GetDirectoryName(team)!);
        var shipped = await File.ReadAllTextAsync(Path.Combine(Path.GetDirectoryName(dll)!, "Agents", "team.json"), ct);
        await File.WriteAllTextAsync(team, shipped.Replace("\"anomalies\"", "\"anomalys\"", StringComparison.Ordinal), ct);
        try
        {
            var (exitCode, stderr) = await ServerProcess.RunToExitAsync([$"--Apex:Agents:TeamFile={team}"], ct);
            Assert.Equal(1, exitCode);
            var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("apex: invalid settings (AgentOptions):", line, StringComparison.Ordinal);
            Assert.Contains(team, line, StringComparison.Ordinal);
            Assert.Contains("agent 'data', field agents[1].tools[6]: no tool is named 'anomalys'.", line, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(team);
        }
    }
}
