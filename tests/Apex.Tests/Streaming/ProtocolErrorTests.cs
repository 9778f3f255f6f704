using System.Text;
using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Streaming;

public sealed class ProtocolErrorTests(SharedServer shared) : IClassFixture<SharedServer>
{
    public static TheoryData<string, string> BadFrames => new()
    {
        { "{not json", "bad_json" },
        { "{\"type\":\"dance\"}", "unknown_type" },
        { "{\"payload\":{}}", "invalid_payload" },
        { "{\"type\":\"user_message\"}", "invalid_payload" },
        { "{\"type\":\"user_message\",\"payload\":{\"content\":\"\"}}", "invalid_payload" },
        { "{\"type\":\"user_message\",\"payload\":{\"content\":42}}", "invalid_payload" },
        { "{\"type\":\"user_message\",\"payload\":{\"content\":\"hi\",\"strategy\":\"shove\"}}", "invalid_payload" },
        { "{\"type\":\"resume\",\"payload\":{\"thread_id\":\"x\",\"after_seq\":\"ten\"}}", "invalid_payload" },
        { "{\"type\":\"stop_agent\",\"payload\":{}}", "invalid_payload" },
        { "{\"type\":\"user_message\",\"payload\":{\"content\":\"hi\",\"thread_id\":\"01a2016f-0000-7000-8000-000000000000\"}}", "not_found" },
        { "{\"type\":\"stop_agent\",\"payload\":{\"run_id\":\"01a2016f-0000-7000-8000-000000000000\"}}", "not_found" },
        { "{\"type\":\"get_thread_history\",\"payload\":{\"thread_id\":\"nope\"}}", "not_found" },
    };

    [Theory]
    [MemberData(nameof(BadFrames))]
    public async Task BadFrameGetsItsErrorCodeAndTheSocketStaysUsable(string frame, string code)
    {
        var ct = Waits.Timeout();
        using var client = await shared.Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);

        await socket.SendRawAsync(Encoding.UTF8.GetBytes(frame), ct);
        var error = Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct));
        Assert.Equal(code, error.Data.Code);
        Assert.False(string.IsNullOrWhiteSpace(error.Data.Message));

        await socket.SendFrameAsync(new ClientFrame("ping"), ct);
        Assert.IsType<Pong>(await socket.ReceiveAsync(ct));
    }

    [Fact]
    public async Task FrameOverTheLimitIsRefusedAndTheNextFrameWorks()
    {
        var ct = Waits.Timeout();
        using var client = await shared.Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        Assert.Equal(8192, socket.Established!.Data.MaxFrameBytes);

        var huge = "{\"type\":\"user_message\",\"payload\":{\"content\":\"" + new string('x', 9000) + "\"}}";
        await socket.SendRawAsync(Encoding.UTF8.GetBytes(huge), ct);
        Assert.Equal("frame_too_large", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);

        var events = await socket.RunToEndAsync("still works?", cancellationToken: ct);
        Assert.IsType<RunCompleted>(events[^1]);
    }

    [Fact]
    public async Task AnotherUsersThreadAndRunAreNotFoundOverTheSocket()
    {
        var ct = Waits.Timeout();
        using var owner = await shared.Server.NewUserAsync();
        using var ownerSocket = await owner.ConnectAsync(ct);
        var ownerEvents = await ownerSocket.RunToEndAsync("mine", cancellationToken: ct);
        var threadId = ownerEvents[0].ThreadId!;
        var runId = ownerEvents[0].RunId!;

        using var intruder = await shared.Server.NewUserAsync();
        using var socket = await intruder.ConnectAsync(ct);
        await socket.SendMessageAsync("let me in", threadId, cancellationToken: ct);
        Assert.Equal("not_found", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);
        await socket.SendAsync("resume", new ResumePayload(threadId, 0), ApexJsonContext.Default.ResumePayload, ct);
        Assert.Equal("not_found", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);
        await socket.SendAsync("switch_thread", new ThreadRefPayload(threadId), ApexJsonContext.Default.ThreadRefPayload, ct);
        Assert.Equal("not_found", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);
        await socket.SendAsync("get_thread_history", new ThreadRefPayload(threadId), ApexJsonContext.Default.ThreadRefPayload, ct);
        Assert.Equal("not_found", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);
        await socket.SendAsync("stop_agent", new StopAgentPayload(runId), ApexJsonContext.Default.StopAgentPayload, ct);
        Assert.Equal("not_found", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);

        // The owner's thread is untouched: still one run, two messages.
        Assert.Equal(2, (await owner.ListMessagesAsync(threadId, cancellationToken: ct)).Items.Count);
    }

    [Fact]
    public async Task HistoryAndSwitchThreadAnswerForOwnThreads()
    {
        var ct = Waits.Timeout();
        using var client = await shared.Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("first", cancellationToken: ct);
        var threadId = events[0].ThreadId!;

        await socket.SendAsync("get_thread_history", new ThreadRefPayload(threadId), ApexJsonContext.Default.ThreadRefPayload, ct);
        var history = Assert.IsType<ThreadHistory>(await socket.ReceiveAsync(ct));
        Assert.Equal(["user", "assistant"], history.Data.Messages.Select(m => m.Role));
        Assert.Equal("completed", Assert.Single(history.Data.Runs).Status);

        await socket.SendAsync("switch_thread", new ThreadRefPayload(threadId), ApexJsonContext.Default.ThreadRefPayload, ct);
        var followed = Assert.IsType<ThreadFollowed>(await socket.ReceiveAsync(ct));
        Assert.Equal(events[^1].Seq, followed.Data.AfterSeq);
    }
}
