using System.Runtime.CompilerServices;
using Apex.Client;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;

namespace Apex.Tests.Agents;

/// <summary>A model that asks for the same tool again on every turn, and never answers.</summary>
internal sealed class LoopingChatClient : IChatClient
{
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await Task.Yield();
        var calls = messages.SelectMany(m => m.Contents).OfType<FunctionCallContent>().Count();
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new FunctionCallContent($"call_{calls}", "workload_summary", new Dictionary<string, object?>())])
            { FinishReason = ChatFinishReason.ToolCalls };
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose()
    {
    }
}

/// <summary>An agent definition's own limits.</summary>
public sealed class AgentLimitTests
{
    [Fact]
    public async Task AnAgentStopsAtItsMaxTurnsAndTheRunStillAnswers()
    {
        await using var server = await ApexTestServer.StartAsync(services: s =>
            s.AddKeyedSingleton<IChatClient>(Apex.Server.Hosting.ApexHostingExtensions.ModelKey, new LoopingChatClient()));
        var ct = Waits.Timeout();
        using var user = await server.NewUserAsync();
        await user.CreateAgentAsync("""{"name":"looper","instructions":"Loop.","tools":["workload_summary"],"max_turns":2}""", ct);
        using var socket = await user.ConnectAsync(ct);
        await socket.SendAsync("user_message", new UserMessagePayload("go", Agent: "looper"), ApexJsonContext.Default.UserMessagePayload, ct);
        var events = await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);

        Assert.Equal(2, events.OfType<ToolCompleted>().Count());
        Assert.Equal("max_turns", Assert.Single(events.OfType<AgentError>()).Data.Code);
        // The agent that writes the answer failed: the built-in report writer stands in, and says so.
        Assert.NotNull(Assert.IsType<RunCompleted>(events[^1]).Data.Note);
    }
}
