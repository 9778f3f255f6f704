using Apex.Client;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Apex.Tests.Streaming;

public sealed class ResumeTests(ScriptedServer scripted) : IClassFixture<ScriptedServer>
{
    private ApexTestServer Server => scripted.Server;

    [Fact]
    public async Task ARunGoesOnWithoutItsClientAndResumeReplaysFromTheCursorThenContinuesLive()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var seen = new List<ApexEvent>();
        string threadId, runId;
        using (var first = await client.ConnectAsync(ct))
        {
            await first.SendMessageAsync("[slow] keep going without me", cancellationToken: ct);
            var frames = await first.ReceiveUntilAsync(e => e is ToolExecuting { Data.Tool: "sleep" }, ct);
            seen.AddRange(frames.Where(e => e.Seq > 0));
            threadId = seen[0].ThreadId!;
            runId = seen[0].RunId!;
            first.Socket.Abort();
        }
        Assert.Equal("running", (await client.GetRunAsync(runId, ct)).Status);

        using var second = await client.ConnectAsync(ct);
        var cursor = seen[^1].Seq;
        await second.SendAsync("resume", new ResumePayload(threadId, cursor), ApexJsonContext.Default.ResumePayload, ct);
        var followed = Assert.IsType<ThreadFollowed>(await second.ReceiveAsync(ct));
        Assert.Equal(cursor, followed.Data.AfterSeq);

        // Another connection (another device) stops the run; the resumed socket sees it live.
        using var other = await client.ConnectAsync(ct);
        await other.SendAsync("stop_agent", new StopAgentPayload(runId), ApexJsonContext.Default.StopAgentPayload, ct);
        var after = await second.ReceiveUntilAsync(e => e.IsTerminal, ct);
        Assert.Equal(cursor + 1, after[0].Seq);
        seen.AddRange(after);
        Assert.Equal(Enumerable.Range(1, seen.Count).Select(i => (long)i), seen.Select(e => e.Seq));

        // Long after the run ended, resume from any point gives the same events again.
        await second.SendAsync("resume", new ResumePayload(threadId, 3), ApexJsonContext.Default.ResumePayload, ct);
        Assert.IsType<ThreadFollowed>(await second.ReceiveAsync(ct));
        var replay = await second.ReceiveUntilAsync(e => e.IsTerminal, ct);
        Assert.Equal(seen.Skip(3).Select(e => e.EventId), replay.Select(e => e.EventId));
    }

    [Fact]
    public async Task OneSubscriptionFollowsEveryRunOfTheThreadWhoeverStartsIt()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var thread = await client.CreateThreadAsync("shared", cancellationToken: ct);
        using var watcher = await client.ConnectAsync(ct);
        await watcher.SendAsync("switch_thread", new ThreadRefPayload(thread.Id), ApexJsonContext.Default.ThreadRefPayload, ct);
        Assert.IsType<ThreadFollowed>(await watcher.ReceiveAsync(ct));

        using var phone = await client.ConnectAsync(ct);
        await phone.RunToEndAsync("from my phone", thread.Id, ct);
        await client.SendMessageAsync(thread.Id, "from curl", cancellationToken: ct);

        var events = new List<ApexEvent>();
        while (events.Count(e => e.IsTerminal) < 2) events.Add((await watcher.ReceiveAsync(ct))!);
        Assert.Equal(2, events.Select(e => e.RunId).Distinct().Count());
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Seq));
    }

    [Fact]
    public async Task SseWithLastEventIdGivesTheSameEventsAsTheSocketForTheSameCursor()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var run = await socket.RunToEndAsync("what do I spend?", cancellationToken: ct);
        var threadId = run[0].ThreadId!;
        const long cursor = 5;

        await socket.SendAsync("resume", new ResumePayload(threadId, cursor), ApexJsonContext.Default.ResumePayload, ct);
        Assert.IsType<ThreadFollowed>(await socket.ReceiveAsync(ct));
        var overSocket = await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);

        var overSse = new List<ApexEvent>();
        await foreach (var evt in client.StreamEventsAsync(threadId, cursor, useLastEventIdHeader: true, cancellationToken: ct))
        {
            overSse.Add(evt);
            if (evt.IsTerminal) break;
        }
        var overQuery = new List<ApexEvent>();
        await foreach (var evt in client.StreamEventsAsync(threadId, cursor, useLastEventIdHeader: false, cancellationToken: ct))
        {
            overQuery.Add(evt);
            if (evt.IsTerminal) break;
        }
        Assert.Equal(cursor + 1, overSocket[0].Seq);
        Assert.Equal(overSocket.Select(e => (e.Seq, e.EventId, e.Type)), overSse.Select(e => (e.Seq, e.EventId, e.Type)));
        Assert.Equal(overSocket.Select(e => (e.Seq, e.EventId, e.Type)), overQuery.Select(e => (e.Seq, e.EventId, e.Type)));
    }

    [Fact]
    public async Task AnEventReplayedFromAnyCursorIsByteForByteTheOneSentLive()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var thread = await client.CreateThreadAsync(cancellationToken: ct);
        using var live = await Apex.Tests.Auth.Sse.OpenAsync(client, thread.Id, 0, ct);
        var reading = Apex.Tests.Auth.Sse.ReadRawToTerminalAsync(live, ct);
        await client.SendMessageAsync(thread.Id, "what do I spend on \"gpt-4o\" — and é, 日本, 🚀?", cancellationToken: ct);
        var sent = await reading;
        Assert.True(sent.Count > 20, $"a whole team's run: {sent.Count} events");
        Assert.Contains(sent, d => d.Contains("\"tool_completed\"", StringComparison.Ordinal));

        foreach (var cursor in new long[] { 0, 1, sent.Count / 2, sent.Count - 1 })
        {
            using var replay = await Apex.Tests.Auth.Sse.OpenAsync(client, thread.Id, cursor, ct);
            Assert.Equal(sent.Skip((int)cursor), await Apex.Tests.Auth.Sse.ReadRawToTerminalAsync(replay, ct));
        }
    }

    [Fact]
    public async Task AnSseStreamEndsWhenItsServerShutsDownSoTheClientCanResumeElsewhere()
    {
        var ct = Waits.Timeout();
        await using var server = await ApexTestServer.StartAsync();
        using var client = await server.NewUserAsync();
        var thread = await client.CreateThreadAsync(cancellationToken: ct);
        await client.SendMessageAsync(thread.Id, "hello", cancellationToken: ct);
        var seen = new List<ApexEvent>();
        var stream = Task.Run(async () =>
        {
            await foreach (var evt in client.StreamEventsAsync(thread.Id, cancellationToken: ct))
            {
                lock (seen) seen.Add(evt);
                if (evt.IsTerminal) server.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();
            }
        }, ct);

        // The stream ends by itself (it would otherwise stay open, live, until the test's timeout).
        await stream.WaitAsync(TimeSpan.FromSeconds(10), ct);
        lock (seen) Assert.IsType<RunCompleted>(seen[^1]);
    }

    [Fact]
    public async Task ResumeWorksAfterARestart()
    {
        var path = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");
        try
        {
            var ct = Waits.Timeout();
            List<ApexEvent> before;
            TokenResponse tokens;
            await using (var first = await ApexTestServer.StartAsync(databasePath: path))
            {
                using var client = await first.NewUserAsync();
                tokens = client.Tokens!;
                using var socket = await client.ConnectAsync(ct);
                before = await socket.RunToEndAsync("remember this", cancellationToken: ct);
            }
            await using var second = await ApexTestServer.StartAsync(databasePath: path);
            using var again = second.CreateClient();
            await again.LoginAsync(tokens.User.Email, "correct horse battery", ct);
            using var resumed = await again.ConnectAsync(ct);
            await resumed.SendAsync("resume", new ResumePayload(before[0].ThreadId!, 0), ApexJsonContext.Default.ResumePayload, ct);
            Assert.IsType<ThreadFollowed>(await resumed.ReceiveAsync(ct));
            var after = await resumed.ReceiveUntilAsync(e => e.IsTerminal, ct);
            Assert.Equal(before.Select(e => e.EventId), after.Select(e => e.EventId));
        }
        finally
        {
            ApexTestServer.DeleteDatabase(path);
        }
    }

    [Fact]
    public async Task PingIsAnsweredWithPong()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        await socket.SendFrameAsync(new ClientFrame("ping"), ct);
        var pong = Assert.IsType<Pong>(await socket.ReceiveAsync(ct));
        Assert.True(pong.Data.ServerTime > DateTimeOffset.UtcNow.AddMinutes(-1));
    }
}

public sealed class RetentionTests
{
    [Fact]
    public async Task EventsPastTheConfiguredRetentionAreDeletedAndRecentOnesKept()
    {
        var clock = new ShiftableTimeProvider();
        await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Storage:EventRetention"] = "1.00:00:00" },
            s => Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<TimeProvider>(s, clock));
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var old = await socket.RunToEndAsync("old", cancellationToken: ct);
        var sweeper = (Apex.Server.Storage.EventRetention)server.Services.GetService(typeof(Apex.Server.Storage.EventRetention))!;
        Assert.Equal(0, await sweeper.SweepAsync(ct));

        clock.Advance(TimeSpan.FromDays(2));
        var recent = await socket.RunToEndAsync("recent", old[0].ThreadId, ct);
        Assert.Equal(old.Count, await sweeper.SweepAsync(ct));

        await socket.SendAsync("resume", new ResumePayload(old[0].ThreadId!, 0), ApexJsonContext.Default.ResumePayload, ct);
        Assert.IsType<ThreadFollowed>(await socket.ReceiveAsync(ct));
        var left = await socket.ReceiveUntilAsync(e => e.IsTerminal, ct);
        Assert.Equal(recent.Select(e => e.EventId), left.Select(e => e.EventId));
    }
}
