using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Events;

namespace Apex.Server.Streaming;

/// <summary>
/// One authenticated socket: reads frames and hands them to the <see cref="ClientProtocol"/>, follows the threads the
/// client works on, and writes every event of those threads through one outbound queue, so frames never interleave.
/// </summary>
internal sealed partial class WebSocketConnection(WebSocket socket, CurrentUser user, string connectionId, ClientProtocol protocol,
    ThreadFollower follower, int maxFrameBytes, ILogger logger)
{
    private readonly Channel<ApexEvent> _outbound = Channel.CreateBounded<ApexEvent>(new BoundedChannelOptions(1024) { SingleReader = true });
    private readonly Dictionary<string, CancellationTokenSource> _following = [];
    private readonly List<Task> _followerTasks = [];

    public CurrentUser User => user;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var sending = SendLoopAsync(lifetime.Token);
        await SendAsync(new ConnectionEstablished(new ConnectionEstablishedData(connectionId, user.Id, maxFrameBytes)), lifetime.Token);
        try
        {
            var reader = new FrameReader(socket, maxFrameBytes);
            while (socket.State == WebSocketState.Open)
            {
                switch (await reader.ReadAsync(lifetime.Token))
                {
                    case Frame.Closed:
                        return;
                    case Frame.TooLarge:
                        await ErrorAsync("frame_too_large", $"Frames are limited to {maxFrameBytes} bytes.", lifetime.Token);
                        break;
                    case Frame.Binary:
                        await ErrorAsync("bad_json", "Frames must be JSON text.", lifetime.Token);
                        break;
                    case Frame.Text text:
                        using (text) await protocol.HandleAsync(this, text.Utf8, lifetime.Token);
                        break;
                }
            }
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

    public bool IsFollowing(string threadId) => _following.ContainsKey(threadId);

    /// <summary>(Re)starts following a thread after a cursor; the acknowledgement precedes the thread's events.</summary>
    public async Task FollowAsync(string threadId, long afterSeq, CancellationToken cancellationToken)
    {
        Unfollow(threadId);
        await SendAsync(new ThreadFollowed(new ThreadFollowedData(threadId, afterSeq)) { ThreadId = threadId, UserId = user.Id }, cancellationToken);
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _following[threadId] = cts;
        _followerTasks.RemoveAll(t => t.IsCompleted);
        _followerTasks.Add(PumpAsync(threadId, afterSeq, cts.Token));
    }

    public void UnfollowAllBut(string threadId)
    {
        foreach (var other in _following.Keys.Where(k => k != threadId).ToList()) Unfollow(other);
    }

    public ValueTask SendAsync(ApexEvent evt, CancellationToken cancellationToken) => _outbound.Writer.WriteAsync(evt, cancellationToken);

    public async Task ErrorAsync(string code, string message, CancellationToken cancellationToken)
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
            await ErrorAsync("internal_error", "Following the thread failed; resume from your last seq.", cancellationToken);
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

    [LoggerMessage(Level = LogLevel.Warning, Message = "Following thread {ThreadId} failed")]
    private static partial void LogFollowFailed(ILogger logger, Exception exception, string threadId);
}
