using System.Runtime.CompilerServices;
using System.Text.Json;
using Apex.Server.Execution;
using Apex.Server.Tools;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Apex.Server.Agents;
using Apex.Server.Storage;

namespace Apex.Tests.Infrastructure;

/// <summary>A tool that takes as long as it is asked to, unless cancelled.</summary>
internal sealed class SleepTool : IApexTool
{
    public string Name => "sleep";
    public string Description => "Waits the given number of seconds.";
    public JsonElement ParametersSchema { get; } = JsonDocument.Parse("""{"type":"object","properties":{"seconds":{"type":"number","minimum":0}},"required":["seconds"]}""").RootElement;
    public string RequiredTier => Tiers.Free;

    public async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var seconds = arguments.GetProperty("seconds").GetDouble();
        await Task.Delay(TimeSpan.FromSeconds(seconds), cancellationToken);
        return JsonSerializer.SerializeToElement(new Dictionary<string, object?> { ["slept"] = seconds });
    }
}

/// <summary>A tool that ignores its cancellation token: it sleeps 10 s whatever happens.</summary>
internal sealed class StubbornTool : IApexTool
{
    public string Name => "stubborn";
    public string Description => "Works for 10 seconds and cannot be interrupted.";
    public JsonElement ParametersSchema { get; } = JsonDocument.Parse("""{"type":"object","properties":{}}""").RootElement;
    public string RequiredTier => Tiers.Free;

    public async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        await Task.Delay(TimeSpan.FromSeconds(10), CancellationToken.None);
        return JsonSerializer.SerializeToElement(new Dictionary<string, object?> { ["done"] = true });
    }
}

/// <summary>
/// The built-in model, scripted for tests: <c>[mcp]</c> makes triage call the everything MCP server's echo tool;
/// <c>[stubborn]</c> makes triage call the <see cref="StubbornTool"/>; a request containing <c>[slow]</c> makes triage call the
/// 10-second <see cref="SleepTool"/> first; <c>[stuck]</c> makes triage's model call hang until cancelled;
/// <c>[stall]</c> makes each agent's first model call take 1.5 s; <c>[pause]</c> makes triage's take 0.4 s; <c>[badresult]</c> makes triage answer outside its schema.
/// </summary>
internal sealed class ScriptedChatClient() : DelegatingChatClient(new BuiltInChatClient(TimeSpan.Zero, TimeProvider.System))
{
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var list = messages.ToList();
        var isTriage = list[0].Text.StartsWith("Agent: triage", StringComparison.Ordinal);
        // Only this run's request counts, not the history the brief also carries.
        var request = list.Count > 1 && list[1].Text.StartsWith('{') ? JsonDocument.Parse(list[1].Text).RootElement.GetProperty("request").GetString() ?? "" : "";
        var calledSleep = list.SelectMany(m => m.Contents).OfType<FunctionCallContent>().Any(c => c.Name == "sleep");
        if (isTriage && request.Contains("[stuck]", StringComparison.Ordinal)) await Task.Delay(Timeout.Infinite, cancellationToken);
        var firstTurn = !list.SelectMany(m => m.Contents).OfType<FunctionResultContent>().Any();
        if (isTriage && request.Contains("[badresult]", StringComparison.Ordinal))
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, """{"category":"astrology","priority":"medium"}""") { FinishReason = ChatFinishReason.Stop };
            yield break;
        }
        if (request.Contains("[stall]", StringComparison.Ordinal) && firstTurn) await Task.Delay(TimeSpan.FromSeconds(1.5), cancellationToken);
        if (isTriage && request.Contains("[pause]", StringComparison.Ordinal) && firstTurn) await Task.Delay(TimeSpan.FromMilliseconds(400), cancellationToken);
        if (isTriage && request.Contains("[stubborn]", StringComparison.Ordinal) && !list.SelectMany(m => m.Contents).OfType<FunctionCallContent>().Any(c => c.Name == "stubborn"))
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new FunctionCallContent("call_stubborn", "stubborn", new Dictionary<string, object?>())]) { FinishReason = ChatFinishReason.ToolCalls };
            yield break;
        }
        if (isTriage && request.Contains("[mcphttp]", StringComparison.Ordinal) && !list.SelectMany(m => m.Contents).OfType<FunctionResultContent>().Any())
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new FunctionCallContent("call_mcp_http", "mcp__remote__workload_summary",
                new Dictionary<string, object?>())]) { FinishReason = ChatFinishReason.ToolCalls };
            yield break;
        }
        if (isTriage && request.Contains("[mcp]", StringComparison.Ordinal) && !list.SelectMany(m => m.Contents).OfType<FunctionResultContent>().Any())
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new FunctionCallContent("call_mcp", "mcp__everything__echo",
                new Dictionary<string, object?> { ["message"] = "hello from apex" })]) { FinishReason = ChatFinishReason.ToolCalls };
            yield break;
        }
        if (isTriage && request.Contains("[slow]", StringComparison.Ordinal) && !calledSleep)
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new FunctionCallContent("call_sleep", "sleep", new Dictionary<string, object?> { ["seconds"] = 10 })]) { FinishReason = ChatFinishReason.ToolCalls };
            yield break;
        }
        await foreach (var update in base.GetStreamingResponseAsync(list, options, cancellationToken)) yield return update;
    }

    public static void Register(IServiceCollection services)
    {
        services.AddSingleton<IApexTool, SleepTool>();
        services.AddSingleton<IApexTool, StubbornTool>();
        // The scripted triage may call the test tools: offer them to it, as a deployment would list a tool for an agent.
        services.AddSingleton(new AgentRegistry(AgentTeam.Default().Select(a => a.Name == AgentNames.Triage ? a with { Tools = a.Tools.Add("sleep").Add("stubborn") } : a)));
        // Only the model is scripted: the pipeline around it (function invocation, outcomes) is the server's own.
        services.AddKeyedSingleton<IChatClient, ScriptedChatClient>(Apex.Server.Hosting.ApexHostingExtensions.ModelKey);
    }
}

public sealed class ScriptedServer : IAsyncLifetime
{
    public ApexTestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ApexTestServer.StartAsync(services: ScriptedChatClient.Register);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
