using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Json;
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
/// A real OpenAI-protocol endpoint on loopback whose answer each test scripts: <see cref="Respond"/> gets the request and
/// writes the response (status, headers, SSE chunks), as an unusual but legal (or broken) provider would.
/// </summary>
internal sealed class ScriptedOpenAiServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ScriptedOpenAiServer(WebApplication app) => _app = app;

    public Uri BaseAddress { get; private set; } = null!;

    public ConcurrentQueue<(TimeSpan At, string? Authorization, JsonElement Body)> Requests { get; } = new();

    public Func<HttpContext, JsonElement, Task> Respond { get; set; } = (_, _) => Task.CompletedTask;

    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public static async Task<ScriptedOpenAiServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new ScriptedOpenAiServer(app);
        app.MapPost("/v1/chat/completions", async context =>
        {
            using var body = await JsonDocument.ParseAsync(context.Request.Body);
            var root = body.RootElement.Clone();
            server.Requests.Enqueue((server._clock.Elapsed, context.Request.Headers.Authorization.ToString(), root));
            await server.Respond(context, root);
        });
        await app.StartAsync();
        server.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/v1/");
        return server;
    }

    public static string Agent(JsonElement request) =>
        request.GetProperty("messages")[0].GetProperty("content").GetString()!.Split('\n')[0].Replace("Agent: ", "", StringComparison.Ordinal).Trim();

    public static bool HasToolResult(JsonElement request) =>
        request.GetProperty("messages").EnumerateArray().Any(m => m.GetProperty("role").GetString() == "tool");

    public static async Task Sse(HttpContext context, params object[] chunks)
    {
        context.Response.ContentType = "text/event-stream";
        foreach (var chunk in chunks) await context.Response.WriteAsync("data: " + (chunk as string ?? JsonSerializer.Serialize(chunk)) + "\n\n");
    }

    public static object Content(string text) => new { id = "c", choices = new[] { new { index = 0, delta = new { content = text } } } };

    public static object Finish(string reason) => new { id = "c", choices = new[] { new { index = 0, delta = new { }, finish_reason = reason } } };

    public static object Usage(int input, int output) => new { id = "c", choices = Array.Empty<object>(), usage = new { prompt_tokens = input, completion_tokens = output, total_tokens = input + output } };

    /// <summary>A valid result for each agent, so that a run goes through when nothing else is scripted.</summary>
    public static string ValidAnswer(string agent) => agent switch
    {
        "triage" => """{"category":"cost","priority":"medium","entities":{"models":[],"metrics":[],"constraints":[]},"data_sufficiency":"insufficient","rationale":"scripted"}""",
        "data_helper" => """{"status":"no_data","calls_found":0,"missing":["usage data"],"required_columns":["timestamp"],"optional_columns":[],"how_to_upload":"POST /api/workloads"}""",
        _ => "A scripted report.",
    };

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}

public sealed class ModelOutcomeTests : IAsyncLifetime
{
    private ScriptedOpenAiServer _model = null!;

    public async Task InitializeAsync() => _model = await ScriptedOpenAiServer.StartAsync();

    public async Task DisposeAsync() => await _model.DisposeAsync();

    private Task<ApexTestServer> ApexAsync(int maxAttempts = 3) => ApexTestServer.StartAsync(new()
    {
        ["Apex:Llm:Provider"] = "openai",
        ["Apex:Llm:Endpoint"] = _model.BaseAddress.ToString(),
        ["Apex:Llm:Model"] = "gpt-4o-mini",
        ["Apex:Llm:MaxAttempts"] = maxAttempts.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Apex:Llm:RetryDelay"] = "00:00:00.050",
    });

    private static async Task<List<ApexEvent>> RunAsync(ApexTestServer server, string message = "How do I cut costs?")
    {
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        return await socket.RunToEndAsync(message, cancellationToken: ct);
    }

    [Theory]
    [InlineData("length", "model_truncated")]
    [InlineData("content_filter", "content_filter")]
    public async Task ATruncatedOrFilteredAnswerIsAnErrorAndTheStandInReportSaysSo(string finishReason, string code)
    {
        _model.Respond = (context, request) => ScriptedOpenAiServer.Sse(context,
            ScriptedOpenAiServer.Content(ScriptedOpenAiServer.ValidAnswer(ScriptedOpenAiServer.Agent(request))[..8]), ScriptedOpenAiServer.Finish(finishReason), "[DONE]");
        await using var server = await ApexAsync();
        var events = await RunAsync(server);

        var errors = events.OfType<AgentError>().ToList();
        Assert.Equal(["triage", "data_helper", "reporting"], errors.Select(e => e.Data.Agent));
        Assert.All(errors, e => Assert.Equal(code, e.Data.Code));
        var completed = Assert.IsType<RunCompleted>(events[^1]);
        Assert.Contains(code, completed.Data.Note, StringComparison.Ordinal);
        Assert.Contains("built-in report writer", string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AnErrorInsideTheStreamOrAStreamThatBreaksOffIsAModelErrorAndTheProvidersWordsStayInTheLog()
    {
        var calls = 0;
        // The provider's marker words are not hex: ids and node names are, and a hex marker turns up in them by chance.
        _model.Respond = (context, request) => Interlocked.Increment(ref calls) % 2 == 1
            // An error object after HTTP 200, then the end of the stream.
            ? ScriptedOpenAiServer.Sse(context, ScriptedOpenAiServer.Content("partial "), """{"error":{"message":"provider secret kumquat","type":"server_error"}}""")
            // Text, then the connection ends: no finish reason, no [DONE].
            : ScriptedOpenAiServer.Sse(context, ScriptedOpenAiServer.Content("partial answer"));
        await using var server = await ApexAsync();
        var events = await RunAsync(server);

        var errors = events.OfType<AgentError>().ToList();
        Assert.NotEmpty(errors);
        Assert.All(errors, e => Assert.Equal("model_error", e.Data.Code));
        Assert.DoesNotContain(events, e => JsonSerializer.Serialize(e, ApexJsonContext.Default.ApexEvent).Contains("kumquat", StringComparison.Ordinal));
        Assert.IsType<RunCompleted>(events[^1]);
    }

    [Fact]
    public async Task AnEndpointErrorBodyIsNotShownToTheUser()
    {
        _model.Respond = async (context, _) =>
        {
            context.Response.StatusCode = 500;
            await context.Response.WriteAsync("internal provider stack trace wombat");
        };
        await using var server = await ApexAsync(maxAttempts: 1);
        var events = await RunAsync(server);
        var error = events.OfType<AgentError>().First();
        Assert.Equal("model_error", error.Data.Code);
        Assert.Contains("HTTP 500", error.Data.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(events, e => JsonSerializer.Serialize(e, ApexJsonContext.Default.ApexEvent).Contains("wombat", StringComparison.Ordinal));
    }

    [Fact]
    public async Task MalformedToolArgumentsAreAnInvalidCallAndTheModelIsToldSoItCanRetry()
    {
        _model.Respond = (context, request) =>
        {
            var agent = ScriptedOpenAiServer.Agent(request);
            if (agent == "triage" && !ScriptedOpenAiServer.HasToolResult(request))
                return ScriptedOpenAiServer.Sse(context,
                    new { id = "c", choices = new[] { new { index = 0, delta = new { tool_calls = new[] { new { index = 0, id = "call_bad", type = "function", function = new { name = "workload_summary", arguments = "{\"x\": " } } } } } } },
                    ScriptedOpenAiServer.Finish("tool_calls"), "[DONE]");
            return ScriptedOpenAiServer.Sse(context, ScriptedOpenAiServer.Content(ScriptedOpenAiServer.ValidAnswer(agent)), ScriptedOpenAiServer.Finish("stop"), "[DONE]");
        };
        await using var server = await ApexAsync();
        var events = await RunAsync(server);

        var call = Assert.Single(events.OfType<ToolCompleted>(), t => t.Data.CallId == "call_bad");
        Assert.Equal("invalid", call.Data.Status);
        Assert.Contains("not valid JSON", call.Data.Error, StringComparison.Ordinal);
        var retried = _model.Requests.Select(r => r.Body).First(b => ScriptedOpenAiServer.HasToolResult(b));
        var told = retried.GetProperty("messages").EnumerateArray().Single(m => m.GetProperty("role").GetString() == "tool");
        Assert.Contains("not valid JSON", told.GetProperty("content").GetString(), StringComparison.Ordinal);
        Assert.IsType<RunCompleted>(events[^1]);
    }

    [Fact]
    public async Task A429IsRetriedAfterTheTimeItsRetryAfterAsks()
    {
        var calls = 0;
        _model.Respond = async (context, request) =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                context.Response.StatusCode = 429;
                context.Response.Headers.RetryAfter = "1";
                return;
            }
            await ScriptedOpenAiServer.Sse(context, ScriptedOpenAiServer.Content(ScriptedOpenAiServer.ValidAnswer(ScriptedOpenAiServer.Agent(request))),
                ScriptedOpenAiServer.Finish("stop"), "[DONE]");
        };
        await using var server = await ApexAsync();
        var events = await RunAsync(server);

        Assert.IsType<RunCompleted>(events[^1]);
        Assert.Empty(events.OfType<AgentError>());
        var requests = _model.Requests.ToList();
        // The retry delay is 50 ms; the endpoint asked for a second.
        Assert.True(requests[1].At - requests[0].At >= TimeSpan.FromSeconds(0.9), $"retried after {(requests[1].At - requests[0].At).TotalMilliseconds} ms");
    }

    [Fact]
    public async Task ADeadEndpointOpensTheCircuitAndLaterCallsFailFastWithModelUnavailable()
    {
        _model.Respond = (context, _) =>
        {
            context.Response.StatusCode = 503;
            return Task.CompletedTask;
        };
        await using var server = await ApexAsync(maxAttempts: 1);
        var codes = new List<string>();
        for (var i = 0; i < 3; i++) codes.AddRange((await RunAsync(server)).OfType<AgentError>().Select(e => e.Data.Code));

        Assert.Equal(9, codes.Count);
        Assert.Contains("model_unavailable", codes);
        // Calls while the circuit is open never reach the endpoint.
        Assert.True(_model.Requests.Count < 9, $"{_model.Requests.Count} requests reached the dead endpoint");
    }

    [Fact]
    public async Task EveryModelCallsUsageIsCountedInTheRunAndInTheUsersUsage()
    {
        _model.Respond = (context, request) => ScriptedOpenAiServer.Sse(context,
            ScriptedOpenAiServer.Content(ScriptedOpenAiServer.ValidAnswer(ScriptedOpenAiServer.Agent(request))), ScriptedOpenAiServer.Finish("stop"),
            ScriptedOpenAiServer.Usage(1000, 200), "[DONE]");
        await using var server = await ApexAsync();
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("How do I cut costs?", cancellationToken: ct);

        var usage = Assert.IsType<RunCompleted>(events[^1]).Data.Usage!;
        var calls = _model.Requests.Count;
        Assert.Equal((1000L * calls, 200L * calls), (usage.InputTokens, usage.OutputTokens));
        var model = Assert.Single(usage.Models);
        Assert.Equal(("gpt-4o-mini", calls), (model.Model, model.Calls));
        // Priced from the same table as workloads: gpt-4o-mini at $0.15 / $0.60 per million tokens.
        Assert.Equal(calls * (1000 * 0.15 + 200 * 0.60) / 1_000_000, usage.CostUsd!.Value, 9);

        using var request = client.Authorized(HttpMethod.Get, "api/usage?days=7");
        var total = (await (await client.Http.SendAsync(request, ct)).Content.ReadFromJsonAsync(ApexJsonContext.Default.UsageDto, ct))!;
        Assert.Equal((usage.InputTokens, usage.OutputTokens), (total.InputTokens, total.OutputTokens));
        Assert.Equal(usage.CostUsd!.Value, total.CostUsd!.Value, 9);
        Assert.Equal("gpt-4o-mini", Assert.Single(total.ByDay).Model);
        Assert.Equal(events.OfType<ToolCompleted>().Count(), total.ToolCalls.Sum(t => t.Calls));
    }

    /// <summary>What the OpenAI adapter makes of streams that are unusual but seen in the wild, and that each ends honestly.</summary>
    [Theory]
    [InlineData("noindex", """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_a","type":"function","function":{"name":"workload_summary","arguments":"{}"}}]}}]}""", """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_b","type":"function","function":{"name":"workload_summary","arguments":"{}"}}]}}]}""")]
    [InlineData("object", """{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"workload_summary","arguments":{}}}]}}]}""", "")]
    [InlineData("nodelta", """{"id":"c","choices":[{"index":0}]}""", """{"id":"c","choices":[{"index":0,"delta":null}]}""")]
    [InlineData("reasoning", """{"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"thinking hard"}}]}""", "")]
    public async Task UnusualStreamsEndHonestly(string name, string first, string second)
    {
        _model.Respond = (context, request) =>
        {
            var agent = ScriptedOpenAiServer.Agent(request);
            if (agent == "triage" && !ScriptedOpenAiServer.HasToolResult(request))
            {
                object[] chunks = second.Length > 0 ? [first, second] : [first];
                return ScriptedOpenAiServer.Sse(context, [.. chunks, .. name is "nodelta" or "reasoning" ? new object[] { ScriptedOpenAiServer.Content(ScriptedOpenAiServer.ValidAnswer(agent)), ScriptedOpenAiServer.Finish("stop") } : [ScriptedOpenAiServer.Finish("tool_calls")], "[DONE]"]);
            }
            return ScriptedOpenAiServer.Sse(context, ScriptedOpenAiServer.Content(ScriptedOpenAiServer.ValidAnswer(agent)), ScriptedOpenAiServer.Finish("stop"), "[DONE]");
        };
        await using var server = await ApexAsync();
        var events = await RunAsync(server);
        var triage = events.Where(e => e.AgentName == "triage").ToList();
        Assert.IsType<RunCompleted>(events[^1]);
        switch (name)
        {
            case "reasoning": // reasoning deltas are the agent thinking aloud
                Assert.Contains(triage, e => e is AgentThinking { Data.Text: "thinking hard" });
                Assert.DoesNotContain(triage, e => e is AgentError);
                break;
            case "nodelta": // a choice without delta, or with delta null, is skipped
                Assert.Contains(triage, e => e is AgentCompleted { Data.Status: "ok" });
                break;
            case "noindex": // the OpenAI SDK joins calls that leave out index: the joined arguments are not run, the model is told
                Assert.Equal("invalid", Assert.Single(triage.OfType<ToolCompleted>()).Data.Status);
                break;
            case "object": // arguments as a JSON object make the SDK throw: a model_error, not a crash
                Assert.Equal("model_error", Assert.Single(triage.OfType<AgentError>()).Data.Code);
                break;
        }
    }

    [Fact]
    public async Task TheBuiltInModelReportsTokensForWhatItReadsAndWrites()
    {
        await using var server = await ApexTestServer.StartAsync();
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("How do I cut costs?", cancellationToken: ct);

        var usage = Assert.IsType<RunCompleted>(events[^1]).Data.Usage!;
        var answer = string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta));
        Assert.Equal("apex-builtin-1", Assert.Single(usage.Models).Model);
        Assert.Equal(0, usage.CostUsd);
        // Four characters a token: at least the answer it wrote, and more read than written (instructions, briefs, tool results).
        Assert.True(usage.OutputTokens >= answer.Length / 4, $"{usage.OutputTokens} output tokens for a {answer.Length}-character answer");
        Assert.True(usage.InputTokens > usage.OutputTokens);
    }
}
