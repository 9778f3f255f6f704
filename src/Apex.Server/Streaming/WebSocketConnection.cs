using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Apex.Server.Runs;
using Apex.Server.Storage;
using Apex.Server.Threads;

namespace Apex.Server.Streaming;

/// <summary>
/// One authenticated socket: reads client frames (each bad one gets an <c>error</c> frame and the
/// socket stays usable), follows the threads the client works on, and writes every event of
/// those threads through one outbound queue, so frames never interleave.
/// </summary>
internal sealed partial class WebSocketConnection(WebSocket socket, CurrentUser user, string connectionId, RunCoordinator coordinator, IApexStore store,
    ThreadFollower follower, LimitsOptions limits, TimeProvider time, ILogger logger)
{
    private readonly Channel<ApexEvent> _outbound = Channel.CreateBounded<ApexEvent>(new BoundedChannelOptions(1024) { SingleReader = true });
    private readonly Dictionary<string, CancellationTokenSource> _following = [];
    private readonly List<Task> _followerTasks = [];

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sending = SendLoopAsync(lifetime.Token);
        await Enqueue(new ConnectionEstablished(new ConnectionEstablishedData(connectionId, user.Id, limits.MaxFrameBytes)), lifetime.Token);
        try
        {
            await ReceiveLoopAsync(lifetime.Token);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // the client went away or the server is stopping: nothing to report to anyone
        }
        finally
        {
            foreach (var cts in _following.Values) cts.Cancel();
            _outbound.Writer.TryComplete();
            await lifetime.CancelAsync();
            await Task.WhenAll([.. _followerTasks, sending]).ContinueWith(static _ => { }, TaskScheduler.Default);
            foreach (var cts in _following.Values) cts.Dispose();
        }
    }

    private async Task ReceiveLoopAsync(CancellationToken cancellationToken)
    {
        while (socket.State == WebSocketState.Open)
        {
            // Wait for the next frame without holding a buffer: an idle socket costs no receive memory.
            var waiting = await socket.ReceiveAsync(Memory<byte>.Empty, cancellationToken);
            if (waiting.MessageType == WebSocketMessageType.Close)
            {
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cancellationToken);
                return;
            }
            var buffer = ArrayPool<byte>.Shared.Rent(limits.MaxFrameBytes + 1);
            try
            {
                var length = 0;
                var tooLarge = false;
                var result = waiting;
                while (!result.EndOfMessage)
                {
                    // Once over the limit, keep reading into the start of the buffer only to discard the rest of the frame.
                    var target = tooLarge ? buffer.AsMemory(0, buffer.Length) : buffer.AsMemory(length, buffer.Length - length);
                    result = await socket.ReceiveAsync(target, cancellationToken);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cancellationToken);
                        return;
                    }
                    if (!tooLarge)
                    {
                        length += result.Count;
                        if (length > limits.MaxFrameBytes) tooLarge = true;
                    }
                }

                if (tooLarge) await Error("frame_too_large", $"Frames are limited to {limits.MaxFrameBytes} bytes.", cancellationToken);
                else if (result.MessageType != WebSocketMessageType.Text) await Error("bad_json", "Frames must be JSON text.", cancellationToken);
                else await HandleFrameAsync(buffer.AsMemory(0, length), cancellationToken);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    private async Task HandleFrameAsync(ReadOnlyMemory<byte> utf8, CancellationToken cancellationToken)
    {
        ClientFrame? frame;
        try
        {
            frame = JsonSerializer.Deserialize(utf8.Span, ApexJsonContext.Default.ClientFrame);
        }
        catch (JsonException ex)
        {
            await Error("bad_json", $"The frame is not valid JSON: {ex.Message}", cancellationToken);
            return;
        }
        if (frame?.Type is not { Length: > 0 } type)
        {
            await Error("invalid_payload", "A frame needs a 'type'.", cancellationToken);
            return;
        }
        try
        {
            switch (type)
            {
                case "user_message" or "start_agent": await OnUserMessageAsync(Payload(frame, ApexJsonContext.Default.UserMessagePayload), cancellationToken); break;
                case "stop_agent": await OnStopAsync(Payload(frame, ApexJsonContext.Default.StopAgentPayload), cancellationToken); break;
                case "resume": await OnResumeAsync(Payload(frame, ApexJsonContext.Default.ResumePayload), cancellationToken); break;
                case "get_thread_history": await OnHistoryAsync(Payload(frame, ApexJsonContext.Default.ThreadRefPayload), cancellationToken); break;
                case "switch_thread": await OnSwitchAsync(Payload(frame, ApexJsonContext.Default.ThreadRefPayload), cancellationToken); break;
                case "ping": await Enqueue(new Pong(new PongData(time.GetUtcNow())), cancellationToken); break;
                default: await Error("unknown_type", $"Unknown frame type '{type}'.", cancellationToken); break;
            }
        }
        catch (InvalidPayloadException ex)
        {
            await Error("invalid_payload", ex.Message, cancellationToken);
        }
    }

    private async Task OnUserMessageAsync(UserMessagePayload payload, CancellationToken cancellationToken)
    {
        if (coordinator.Check(payload.Content, payload.Strategy) is { } invalid)
        {
            await Error(invalid.Code, invalid.Message, cancellationToken);
            return;
        }
        ThreadRecord? thread;
        if (payload.ThreadId is null)
        {
            thread = await coordinator.CreateThreadAsync(user, payload.Content!, cancellationToken);
        }
        else if ((thread = await store.GetThreadAsync(user.Id, payload.ThreadId, cancellationToken)) is null)
        {
            await Error("not_found", "No such thread.", cancellationToken);
            return;
        }
        // Follow before submitting, from the thread's current end: run_queued and everything after it arrive here.
        if (!_following.ContainsKey(thread.Id)) await FollowAsync(thread.Id, thread.LastSeq, cancellationToken);
        var (_, refused) = await coordinator.SubmitAsync(user, thread.Id, payload.Content, payload.Strategy, cancellationToken);
        if (refused is not null) await Error(refused.Code, refused.Message, cancellationToken);
    }

    private async Task OnStopAsync(StopAgentPayload payload, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(payload.RunId)) throw new InvalidPayloadException("'run_id' is required.");
        var (outcome, run) = await coordinator.CancelAsync(user, payload.RunId, CancelReasons.User, cancellationToken);
        if (outcome == CancelOutcome.NotFound) await Error("not_found", "No such run.", cancellationToken);
        else if (outcome == CancelOutcome.AlreadyFinished) await Error("run_finished", $"The run already ended as {run!.Status}.", cancellationToken);
    }

    private async Task OnResumeAsync(ResumePayload payload, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(payload.ThreadId)) throw new InvalidPayloadException("'thread_id' is required.");
        if (payload.AfterSeq < 0) throw new InvalidPayloadException("'after_seq' must not be negative.");
        if (await store.GetThreadAsync(user.Id, payload.ThreadId, cancellationToken) is null)
        {
            await Error("not_found", "No such thread.", cancellationToken);
            return;
        }
        await FollowAsync(payload.ThreadId, payload.AfterSeq, cancellationToken);
    }

    private async Task OnHistoryAsync(ThreadRefPayload payload, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(payload.ThreadId)) throw new InvalidPayloadException("'thread_id' is required.");
        var thread = await store.GetThreadAsync(user.Id, payload.ThreadId, cancellationToken);
        if (thread is null)
        {
            await Error("not_found", "No such thread.", cancellationToken);
            return;
        }
        var messages = await store.RecentMessagesAsync(user.Id, thread.Id, 100, cancellationToken);
        var runs = await store.ListRunsAsync(user.Id, thread.Id, 100, null, cancellationToken);
        await Enqueue(new ThreadHistory(new ThreadHistoryData(thread.ToDto(), [.. messages.Select(m => m.ToDto())], [.. runs.Select(r => r.ToDto())]))
            { ThreadId = thread.Id, UserId = user.Id }, cancellationToken);
    }

    private async Task OnSwitchAsync(ThreadRefPayload payload, CancellationToken cancellationToken)
    {
        if (string.IsNullOrWhiteSpace(payload.ThreadId)) throw new InvalidPayloadException("'thread_id' is required.");
        var thread = await store.GetThreadAsync(user.Id, payload.ThreadId, cancellationToken);
        if (thread is null)
        {
            await Error("not_found", "No such thread.", cancellationToken);
            return;
        }
        foreach (var other in _following.Keys.Where(k => k != thread.Id).ToList()) Unfollow(other);
        await FollowAsync(thread.Id, thread.LastSeq, cancellationToken);
    }

    /// <summary>(Re)starts following a thread after a cursor; the ack precedes the thread's events.</summary>
    private async Task FollowAsync(string threadId, long afterSeq, CancellationToken cancellationToken)
    {
        Unfollow(threadId);
        await Enqueue(new ThreadFollowed(new ThreadFollowedData(threadId, afterSeq)) { ThreadId = threadId, UserId = user.Id }, cancellationToken);
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _following[threadId] = cts;
        _followerTasks.RemoveAll(t => t.IsCompleted);
        _followerTasks.Add(PumpAsync(threadId, afterSeq, cts.Token));
    }

    private void Unfollow(string threadId)
    {
        if (!_following.Remove(threadId, out var cts)) return;
        cts.Cancel();
        cts.Dispose();
    }

    private async Task PumpAsync(string threadId, long afterSeq, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var evt in follower.FollowAsync(user.Id, threadId, afterSeq, cancellationToken))
                await _outbound.Writer.WriteAsync(evt, cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
        catch (ChannelClosedException)
        {
        }
        catch (Exception ex)
        {
            LogFollowFailed(logger, ex, threadId);
            await Error("internal_error", "Following the thread failed; resume from your last seq.", cancellationToken);
        }
    }

    private async Task SendLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var evt in _outbound.Reader.ReadAllAsync(cancellationToken))
            {
                var bytes = JsonSerializer.SerializeToUtf8Bytes(evt, ApexJsonContext.Default.ApexEvent);
                await socket.SendAsync(bytes, WebSocketMessageType.Text, true, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // the socket is gone; the receive loop ends the connection
        }
    }

    private ValueTask Enqueue(ApexEvent evt, CancellationToken cancellationToken) => _outbound.Writer.WriteAsync(evt, cancellationToken);

    private async Task Error(string code, string message, CancellationToken cancellationToken)
    {
        try
        {
            await _outbound.Writer.WriteAsync(new ErrorFrame(new ErrorData(code, message)), cancellationToken);
        }
        catch (ChannelClosedException)
        {
            // the connection is closing: there is no one left to tell
        }
    }

    private static T Payload<T>(ClientFrame frame, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        if (frame.Payload is not { ValueKind: JsonValueKind.Object } payload) throw new InvalidPayloadException($"'{frame.Type}' needs a 'payload' object.");
        try
        {
            return payload.Deserialize(type) ?? throw new InvalidPayloadException($"'{frame.Type}' needs a 'payload' object.");
        }
        catch (JsonException ex)
        {
            throw new InvalidPayloadException($"The payload of '{frame.Type}' is invalid: {ex.Message}");
        }
    }

    private sealed class InvalidPayloadException(string message) : Exception(message);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Following thread {ThreadId} failed")]
    private static partial void LogFollowFailed(ILogger logger, Exception exception, string threadId);
}
