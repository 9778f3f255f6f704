using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Streaming;

public sealed class GoldenPathTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApexTestServer Server => shared.Server;

    [Fact]
    public async Task NewUserRegistersChatsOverTheSocketAndFindsTheAnswerStored()
    {
        var ct = Waits.Timeout();
        using var client = Server.CreateClient();
        var tokens = await client.RegisterAsync("golden@example.com", "correct horse battery", ct);
        Assert.Equal("golden@example.com", tokens.User.Email);

        using var socket = await client.ConnectAsync(ct);
        Assert.Equal(tokens.User.Id, socket.Established!.Data.UserId);

        await socket.SendMessageAsync("How can I cut the cost of my LLM calls?", cancellationToken: ct);
        var frames = await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);
        var followed = Assert.IsType<ThreadFollowed>(frames[0]);
        var events = frames.Where(e => e.Seq > 0).ToList();

        Assert.IsType<RunQueued>(events[0]);
        var completed = Assert.IsType<RunCompleted>(events[^1]);
        var threadId = followed.Data.ThreadId;
        Assert.All(events, e => Assert.Equal(threadId, e.ThreadId));

        var answer = string.Concat(events.OfType<MessageDelta>().Select(d => d.Data.Delta));
        Assert.Contains("POST /api/workloads", answer, StringComparison.Ordinal);

        var messages = await client.ListMessagesAsync(threadId, cancellationToken: ct);
        Assert.Collection(messages.Items,
            user => { Assert.Equal("user", user.Role); Assert.Equal("How can I cut the cost of my LLM calls?", user.Content); },
            assistant =>
            {
                Assert.Equal("assistant", assistant.Role);
                Assert.Equal(completed.Data.MessageId, assistant.Id);
                Assert.Equal(answer, assistant.Content);
            });

        var run = await client.GetRunAsync(completed.RunId!, ct);
        Assert.Equal("completed", run.Status);
        Assert.NotNull(run.EndedAt);
    }

    [Fact]
    public async Task AgentsRunTriageThenThePipelineForTheirDataSufficiency()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("Why is my latency so high?", cancellationToken: ct);

        var agents = events.OfType<AgentStarted>().Select(e => e.Data.Agent).ToList();
        Assert.Equal(["supervisor", "triage", "data_helper", "reporting"], agents);
        var triage = events.OfType<AgentCompleted>().Single(e => e.Data.Agent == "triage");
        Assert.Equal("insufficient", triage.Data.Result!.Value.GetProperty("data_sufficiency").GetString());
        Assert.Equal("latency", triage.Data.Result!.Value.GetProperty("category").GetString());
        Assert.Contains(events.OfType<ToolExecuting>(), t => t.Data.Tool == "workload_summary" && t.AgentName == "triage");
    }

    [Fact]
    public async Task MessagesSentOverRestRunAndStreamOverSse()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var thread = await client.CreateThreadAsync("rest", cancellationToken: ct);
        var sent = await client.SendMessageAsync(thread.Id, "What do I spend on models?", cancellationToken: ct);
        Assert.Equal("queued", sent.Run.Status);

        var events = new List<ApexEvent>();
        await foreach (var evt in client.StreamEventsAsync(thread.Id, cancellationToken: ct))
        {
            events.Add(evt);
            if (evt.IsTerminal) break;
        }
        Assert.IsType<RunQueued>(events[0]);
        Assert.IsType<RunCompleted>(events[^1]);
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
    }
}
