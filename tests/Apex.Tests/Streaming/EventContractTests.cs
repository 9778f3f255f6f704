using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Streaming;

public sealed class EventContractTests(SharedServer shared) : IClassFixture<SharedServer>
{
    [Fact]
    public async Task EveryAgentAndToolEmitsItsCriticalEventsInGaplessSeqOrderWithOneTerminalEventLast()
    {
        var ct = Waits.Timeout();
        using var client = await shared.Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var thread = await client.CreateThreadAsync(cancellationToken: ct);

        for (var round = 0; round < 2; round++)
        {
            var events = await socket.RunToEndAsync("Analyse my workload", thread.Id, ct);
            for (var i = 1; i < events.Count; i++) Assert.Equal(events[i - 1].Seq + 1, events[i].Seq);
            Assert.Single(events, e => e.IsTerminal);
            Assert.True(events[^1].IsTerminal);
            Assert.All(events, e => Assert.False(string.IsNullOrEmpty(e.EventId)));
            Assert.Single(events.Select(e => e.RunId).Distinct());

            var started = events.OfType<AgentStarted>().Select(e => e.Data.Agent).ToList();
            Assert.NotEmpty(started);
            foreach (var agent in started)
            {
                var start = events.FindIndex(e => e is AgentStarted s && s.Data.Agent == agent);
                var end = events.FindIndex(e => e is AgentCompleted c && c.Data.Agent == agent);
                Assert.True(end > start, $"{agent} must complete after it starts");
                Assert.Contains(events.Skip(start).Take(end - start), e => e is AgentThinking && e.AgentName == agent);
            }

            var calls = events.OfType<ToolExecuting>().ToList();
            Assert.NotEmpty(calls);
            foreach (var call in calls)
            {
                var completed = Assert.Single(events.OfType<ToolCompleted>(), c => c.Data.CallId == call.Data.CallId);
                Assert.True(completed.Seq > call.Seq);
                Assert.Equal("ok", completed.Data.Status);
            }
        }
    }

    [Fact]
    public async Task EventsSerializeAsOneSnakeCaseEnvelope()
    {
        var ct = Waits.Timeout();
        using var client = await shared.Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        await socket.SendMessageAsync("hello", cancellationToken: ct);
        string? raw = null;
        while (raw is null || !raw.Contains("\"tool_executing\"", StringComparison.Ordinal)) raw = await socket.ReceiveTextAsync(ct);

        using var document = System.Text.Json.JsonDocument.Parse(raw);
        var root = document.RootElement;
        Assert.Equal("tool_executing", root.GetProperty("type").GetString());
        foreach (var field in new[] { "event_id", "seq", "thread_id", "run_id", "user_id", "agent_name", "timestamp", "data" })
            Assert.True(root.TryGetProperty(field, out _), $"missing {field}");
        Assert.True(root.GetProperty("data").TryGetProperty("call_id", out _));
    }
}
