using Apex.Client;
using Apex.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Apex.Tests.Streaming;

/// <summary>
/// Bounded chaos: 30 users, 2 threads each, 2 runs per thread, while every client drops its
/// socket at random moments and resumes from its last seq. Counts and time are bounded.
/// </summary>
public sealed class ChaosTests(ITestOutputHelper output)
{
    private const int Users = 30, ThreadsPerUser = 2, RunsPerThread = 2;

    [Fact]
    public async Task ClientsThatDropAndResumeHoldEveryEventOfTheirThreadsExactlyOnceAndNothingElse()
    {
        await using var server = await ApexTestServer.StartAsync(new Dictionary<string, string?> { ["Apex:Llm:BuiltInDelay"] = "00:00:00.003" });
        var ct = Waits.Timeout(240);
        var drops = 0;

        var users = await Task.WhenAll(Enumerable.Range(0, Users).Select(async index =>
        {
            var random = new Random(index);
            using var client = await server.NewUserAsync();
            var threads = new List<string>();
            for (var t = 0; t < ThreadsPerUser; t++) threads.Add((await client.CreateThreadAsync($"chaos {t}", cancellationToken: ct)).Id);
            var received = threads.ToDictionary(t => t, _ => new List<ApexEvent>());
            var foreign = new List<ApexEvent>();

            var sent = 0;
            while (received.Values.Sum(list => list.Count(e => e.IsTerminal)) < ThreadsPerUser * RunsPerThread)
            {
                using var socket = await client.ConnectAsync(ct);
                foreach (var thread in threads)
                {
                    var cursor = received[thread].Count == 0 ? 0 : received[thread][^1].Seq;
                    await socket.SendAsync("resume", new ResumePayload(thread, cursor), ApexJsonContext.Default.ResumePayload, ct);
                }
                // Messages go over REST, so a drop never leaves it unclear whether one was sent.
                while (sent < ThreadsPerUser * RunsPerThread && random.Next(3) > 0)
                {
                    await client.SendMessageAsync(threads[sent % ThreadsPerUser], $"message {sent}", cancellationToken: ct);
                    sent++;
                }
                var budget = random.Next(1, 40);
                while (budget-- > 0 && received.Values.Sum(list => list.Count(e => e.IsTerminal)) < sent)
                {
                    var evt = await socket.ReceiveAsync(ct) ?? throw new InvalidOperationException("closed");
                    if (evt.Seq == 0) continue;
                    if (evt.UserId != client.Tokens!.User.Id || !received.ContainsKey(evt.ThreadId!)) foreign.Add(evt);
                    else received[evt.ThreadId!].Add(evt);
                }
                socket.Socket.Abort();
                Interlocked.Increment(ref drops);
                if (sent == ThreadsPerUser * RunsPerThread && received.Values.Sum(list => list.Count(e => e.IsTerminal)) == sent) break;
            }
            var stored = new Dictionary<string, List<ApexEvent>>();
            foreach (var thread in threads)
            {
                var all = new List<ApexEvent>();
                await foreach (var evt in client.StreamEventsAsync(thread, 0, cancellationToken: ct))
                {
                    all.Add(evt);
                    if (all.Count(e => e.IsTerminal) == RunsPerThread) break;
                }
                stored[thread] = all;
            }
            return (received, foreign, stored);
        }));

        output.WriteLine($"{Users} users, {drops} dropped connections");
        Assert.True(drops >= Users, "every client dropped at least once");
        foreach (var (received, foreign, stored) in users)
        {
            Assert.Empty(foreign);
            foreach (var (thread, events) in received)
            {
                Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
                Assert.Equal(stored[thread].Select(e => e.EventId), events.Select(e => e.EventId));
                Assert.Equal(RunsPerThread, events.Count(e => e.IsTerminal));
            }
        }
    }
}
