using System.Collections.Concurrent;
using System.Text.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Apex.Tests.Llm;

/// <summary>
/// A real HTTP server on loopback that speaks the OpenAI chat completions streaming protocol, scripted:
/// it asks for the first tool offered, then answers; its very first request fails with 503.
/// </summary>
internal sealed class FakeOpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;

    public ConcurrentQueue<(string? Authorization, JsonElement Body)> Requests { get; } = new();

    public const string Report = "The report from a real model: **cache repeated prompts**.";

    private FakeOpenAiServer(WebApplication app) => _app = app;

    public Uri BaseAddress { get; private set; } = null!;

    public static async Task<FakeOpenAiServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new FakeOpenAiServer(app);
        app.MapPost("/v1/chat/completions", server.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseAddress = new Uri(address + "/v1/");
        return server;
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var body = await JsonDocument.ParseAsync(context.Request.Body);
        Requests.Enqueue((context.Request.Headers.Authorization.ToString(), body.RootElement.Clone()));
        if (Interlocked.Increment(ref _requests) == 1)
        {
            context.Response.StatusCode = 503;
            return;
        }
        var root = body.RootElement;
        var messages = root.GetProperty("messages").EnumerateArray().ToList();
        var system = messages[0].GetProperty("content").GetString()!;
        var last = messages[^1];
        context.Response.ContentType = "text/event-stream";

        async Task Chunk(object delta) =>
            await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "c", choices = new[] { new { index = 0, delta } } }) + "\n\n");
        async Task Finish(string reason) =>
            await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "c", choices = new[] { new { index = 0, delta = new { }, finish_reason = reason } } }) + "\n\n");

        if (last.GetProperty("role").GetString() != "tool" && root.TryGetProperty("tools", out var tools) && tools.GetArrayLength() > 0)
        {
            var name = tools[0].GetProperty("function").GetProperty("name").GetString();
            await Chunk(new { tool_calls = new[] { new { index = 0, id = "call_fake_1", type = "function", function = new { name, arguments = "{" } } } });
            await Chunk(new { tool_calls = new[] { new { index = 0, function = new { arguments = "}" } } } });
            await Finish("tool_calls");
        }
        else if (system.StartsWith("Agent: reporting", StringComparison.Ordinal))
        {
            foreach (var piece in new[] { "The report from ", "a real model: ", "**cache repeated prompts**." }) await Chunk(new { content = piece });
            await Finish("stop");
        }
        else
        {
            var answer = system.StartsWith("Agent: triage", StringComparison.Ordinal)
                ? """{"category":"cost","priority":"medium","entities":{"models":[],"metrics":[],"constraints":[]},"data_sufficiency":"insufficient","rationale":"scripted"}"""
                : """{"status":"no_data","calls_found":0,"missing":["usage data"],"required_columns":["timestamp"],"optional_columns":[],"how_to_upload":"POST /api/workloads"}""";
            await Chunk(new { content = answer[..10] });
            await Chunk(new { content = answer[10..] });
            await Finish("stop");
        }
        await context.Response.WriteAsync("data: " + JsonSerializer.Serialize(new { id = "c", choices = Array.Empty<object>(), usage = new { prompt_tokens = 10, completion_tokens = 5, total_tokens = 15 } }) + "\n\n");
        await context.Response.WriteAsync("data: [DONE]\n\n");
    }

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

public sealed class OpenAiCompatibleTests
{
    [Fact]
    public async Task AnOpenAiCompatibleEndpointDrivesTheTeamWithRealToolCalls()
    {
        await using var model = await FakeOpenAiServer.StartAsync();
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
        Assert.Equal(FakeOpenAiServer.Report, string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta)));
        Assert.Equal(FakeOpenAiServer.Report, (await client.ListMessagesAsync(events[0].ThreadId!, cancellationToken: ct)).Items[^1].Content);

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
