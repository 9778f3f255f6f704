using System.Text.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Apex.Tests.Llm;

/// <summary>
/// The scripted OpenAI-protocol endpoint of <see cref="ScriptedOpenAiServer"/>, scripted like a small real model: it asks
/// for the first tool offered, then answers; its very first request fails with 503.
/// </summary>
internal static class FakeModel
{
    public const string Report = "The report from a real model: **cache repeated prompts**.";

    public static async Task<ScriptedOpenAiServer> StartAsync()
    {
        var server = await ScriptedOpenAiServer.StartAsync();
        var requests = 0;
        server.Respond = async (context, root) =>
        {
            if (Interlocked.Increment(ref requests) == 1)
            {
                context.Response.StatusCode = 503;
                return;
            }
            var agent = ScriptedOpenAiServer.Agent(root);
            var last = root.GetProperty("messages").EnumerateArray().Last();
            object[] chunks;
            if (last.GetProperty("role").GetString() != "tool" && root.TryGetProperty("tools", out var tools) && tools.GetArrayLength() > 0)
            {
                var name = tools[0].GetProperty("function").GetProperty("name").GetString();
                chunks =
                [
                    new { id = "c", choices = new[] { new { index = 0, delta = new { tool_calls = new[] { new { index = 0, id = "call_fake_1", type = "function", function = new { name, arguments = "{" } } } } } } },
                    new { id = "c", choices = new[] { new { index = 0, delta = new { tool_calls = new[] { new { index = 0, function = new { arguments = "}" } } } } } } },
                    ScriptedOpenAiServer.Finish("tool_calls"),
                ];
            }
            else if (agent == "reporting")
            {
                chunks = [.. new[] { "The report from ", "a real model: ", "**cache repeated prompts**." }.Select(ScriptedOpenAiServer.Content), ScriptedOpenAiServer.Finish("stop")];
            }
            else
            {
                var answer = ScriptedOpenAiServer.ValidAnswer(agent);
                chunks = [ScriptedOpenAiServer.Content(answer[..10]), ScriptedOpenAiServer.Content(answer[10..]), ScriptedOpenAiServer.Finish("stop")];
            }
            await ScriptedOpenAiServer.Sse(context, [.. chunks, ScriptedOpenAiServer.Usage(10, 5), "[DONE]"]);
        };
        return server;
    }
}

public sealed class OpenAiCompatibleTests
{
    [Fact]
    public async Task AnOpenAiCompatibleEndpointDrivesTheTeamWithRealToolCalls()
    {
        await using var model = await FakeModel.StartAsync();
        await using var server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Llm:Provider"] = "openai",
            ["Apex:Llm:Endpoint"] = model.BaseAddress.ToString(),
            ["Apex:Llm:Model"] = "gpt-4o-mini",
            ["Apex:Llm:ApiKey"] = "sk-test",
        });
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("How do I cut costs?", cancellationToken: ct);

        Assert.IsType<RunCompleted>(events[^1]);
        Assert.Equal(["supervisor", "triage", "data_helper", "reporting"], events.OfType<AgentStarted>().Select(a => a.Data.Agent));
        var call = events.OfType<ToolExecuting>().First();
        Assert.Equal(("call_fake_1", "workload_summary"), (call.Data.CallId, call.Data.Tool));
        Assert.Equal("ok", events.OfType<ToolCompleted>().Single(t => t.Data.CallId == "call_fake_1" && t.AgentName == "triage").Data.Status);
        Assert.Equal(FakeModel.Report, string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta)));
        Assert.Equal(FakeModel.Report, (await client.ListMessagesAsync(events[0].ThreadId!, cancellationToken: ct)).Items[^1].Content);

        var requests = model.Requests.ToList();
        Assert.All(requests, r => Assert.Equal("Bearer sk-test", r.Authorization));
        Assert.All(requests, r => Assert.Equal("gpt-4o-mini", r.Body.GetProperty("model").GetString()));
        // The first request failed with 503 and was retried with the same body.
        Assert.Equal(requests[0].Body.GetRawText(), requests[1].Body.GetRawText());
        Assert.Contains(requests, r => r.Body.TryGetProperty("tools", out var tools) && tools[0].GetProperty("function").GetProperty("name").GetString() == "workload_summary");
        var triageFormat = requests.First(r => r.Body.GetProperty("messages")[0].GetProperty("content").GetString()!.StartsWith("Agent: triage", StringComparison.Ordinal))
            .Body.GetProperty("response_format");
        Assert.Equal("json_schema", triageFormat.GetProperty("type").GetString());
        Assert.Equal("triage", triageFormat.GetProperty("json_schema").GetProperty("name").GetString());
        Assert.Contains("data_sufficiency", triageFormat.GetProperty("json_schema").GetProperty("schema").GetProperty("required").EnumerateArray().Select(e => e.GetString()));
        var withResult = requests.First(r => r.Body.GetProperty("messages").EnumerateArray().Any(m => m.GetProperty("role").GetString() == "tool"));
        var toolMessage = withResult.Body.GetProperty("messages").EnumerateArray().Single(m => m.GetProperty("role").GetString() == "tool");
        Assert.Equal("call_fake_1", toolMessage.GetProperty("tool_call_id").GetString());
        using (var result = JsonDocument.Parse(toolMessage.GetProperty("content").GetString()!))
            Assert.Equal(0, result.RootElement.GetProperty("calls").GetInt64());
        var assistant = withResult.Body.GetProperty("messages").EnumerateArray().Single(m => m.GetProperty("role").GetString() == "assistant");
        Assert.Equal("workload_summary", assistant.GetProperty("tool_calls")[0].GetProperty("function").GetProperty("name").GetString());
    }

    [Fact]
    public void AnOpenAiProviderWithoutEndpointOrModelIsRefusedAtStartUp()
    {
        var error = Assert.ThrowsAny<Exception>(() => ApexTestServer.StartAsync(new() { ["Apex:Llm:Provider"] = "openai" }).GetAwaiter().GetResult());
        Assert.Contains("Apex:Llm:Endpoint", error.ToString(), StringComparison.Ordinal);
    }
}
