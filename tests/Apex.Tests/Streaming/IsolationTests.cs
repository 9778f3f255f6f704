using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Streaming;

public sealed class IsolationTests
{
    [Fact]
    public async Task TwentyUsersWithThreeConcurrentRunsEachReceiveAllOfTheirOwnEventsAndNothingElse()
    {
        await using var server = await ApexTestServer.StartAsync();
        var ct = Waits.Timeout(120);
        const int users = 20, runsPerUser = 3;

        var results = await Task.WhenAll(Enumerable.Range(0, users).Select(async _ =>
        {
            using var client = await server.NewUserAsync();
            using var socket = await client.ConnectAsync(ct);
            var threads = new List<string>();
            for (var i = 0; i < runsPerUser; i++) threads.Add((await client.CreateThreadAsync($"t{i}", cancellationToken: ct)).Id);
            foreach (var thread in threads) await socket.SendMessageAsync("Where does my LLM money go?", thread, cancellationToken: ct);

            var received = new List<ApexEvent>();
            var terminals = 0;
            while (terminals < runsPerUser)
            {
                var evt = await socket.ReceiveAsync(ct) ?? throw new InvalidOperationException("socket closed");
                received.Add(evt);
                if (evt.IsTerminal) terminals++;
            }
            return (UserId: client.Tokens!.User.Id, Threads: threads, Received: received, Client: client.Tokens);
        }));

        var allUserIds = results.Select(r => r.UserId).ToHashSet();
        foreach (var (userId, threads, received, _) in results)
        {
            var stored = received.Where(e => e.Seq > 0).ToList();
            // Nothing foreign: every id on every event is this user's.
            Assert.All(stored, e => Assert.Equal(userId, e.UserId));
            Assert.All(stored, e => Assert.Contains(e.ThreadId!, threads));
            Assert.All(received.OfType<ThreadFollowed>(), e => Assert.Contains(e.Data.ThreadId, threads));
            Assert.DoesNotContain(received, e => e.UserId is not null && e.UserId != userId && allUserIds.Contains(e.UserId));

            // Nothing lost: each thread's events are gapless from 1 and end with exactly one terminal event.
            foreach (var thread in threads)
            {
                var mine = stored.Where(e => e.ThreadId == thread).ToList();
                Assert.Equal(Enumerable.Range(1, mine.Count).Select(i => (long)i), mine.Select(e => e.Seq));
                Assert.Single(mine, e => e.IsTerminal);
                Assert.IsType<RunCompleted>(mine[^1]);
            }
        }
    }
}
