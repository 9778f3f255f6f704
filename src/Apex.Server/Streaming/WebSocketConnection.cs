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
/// It lives as long as its credential: a revoked session or an expired credential (unless a <c>reauth</c> came first)
/// closes it with 1008 and the reason.
/// </summary>
internal sealed partial class WebSocketConnection(WebSocket socket, CurrentUser user, string connectionId, ClientProtocol protocol,
    ThreadFollower follower, SessionWatch sessions, TimeProvider time, int maxFrameBytes, int maxFollows, ILogger logger)
{
    /// <summary>How long a closing socket waits for the client's close frame before it is dropped.</summary>
    private static readonly TimeSpan ClosePatience = TimeSpan.FromSeconds(2);
    private readonly Channel<ApexEvent> _outbound = Channel.CreateBounded<ApexEvent>(new BoundedChannelOptions(1024) { SingleReader = true });
    private readonly Dictionary<string, CancellationTokenSource> _following = [];
    private readonly List<Task> _followerTasks = [];
    private readonly Lock _authGate = new();
    private CancellationTokenSource? _lifetime;
    private IDisposable? _watch;
    private string? _endReason;

    public CurrentUser User { get; private set; } = user;

    /// <summary>Why the server ended the connection (its credential ended), or null.</summary>
    public string? EndReason => Volatile.Read(ref _endReason);

    /// <summary>Whether one more thread can be followed (an already-followed one always can).</summary>
    public bool CanFollow(string? threadId) => (threadId is not null && _following.ContainsKey(threadId)) || _following.Count < maxFollows;

    /// <summary>The socket now lives on the new credential (the same user's): its session is watched and its expiry applies.</summary>
    public void Reauthenticate(CurrentUser next)
    {
        lock (_authGate)
        {
            if (EndReason is not null) return;
            _watch?.Dispose();
            User = next;
            _watch = sessions.Watch(next, End);
        }
    }

    /// <summary>Serves the socket until the client leaves (<paramref name="requestAborted"/>), the server stops or the credential ends.</summary>
    public async Task RunAsync(CancellationToken requestAborted, CancellationToken stopping)
    {
        // One source for all three ends: an idle socket holds it (and its registrations) for as long as it is open.
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, stopping);
        _lifetime = lifetime;
        lock (_authGate) _watch = sessions.Watch(User, End);
        var sending = SendLoopAsync(lifetime.Token);
        await SendAsync(new ConnectionEstablished(new ConnectionEstablishedData(connectionId, User.Id, maxFrameBytes)), lifetime.Token);
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
            lock (_authGate)
            {
                _watch?.Dispose();
                _watch = null;
            }
            foreach (var cts in _following.Values) cts.Cancel();
            _outbound.Writer.TryComplete();
            await lifetime.CancelAsync();
            await Task.WhenAll([.. _followerTasks, sending]).ContinueWith(static _ => { }, TaskScheduler.Default);
            foreach (var cts in _following.Values) cts.Dispose();
        }
    }

    public bool IsFollowing(string threadId) => _following.ContainsKey(threadId);

    /// <summary>
    /// (Re)starts following a thread after a cursor; the acknowledgement precedes the thread's events. False (and an
    /// error frame) when the connection already follows as many threads as it may.
    /// </summary>
    public async Task<bool> FollowAsync(string threadId, long afterSeq, CancellationToken cancellationToken)
    {
        if (!CanFollow(threadId))
        {
            await ErrorAsync("too_many_follows", TooManyFollows, cancellationToken);
            return false;
        }
        Unfollow(threadId);
        await SendAsync(new ThreadFollowed(new ThreadFollowedData(threadId, afterSeq)) { ThreadId = threadId, UserId = User.Id }, cancellationToken);
        var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _following[threadId] = cts;
        _followerTasks.RemoveAll(t => t.IsCompleted);
        _followerTasks.Add(PumpAsync(threadId, afterSeq, cts.Token));
        return true;
    }

    public string TooManyFollows => $"A connection follows at most {maxFollows} threads; switch_thread to drop the others, or open another connection.";

    /// <summary>
    /// Ends the connection because its credential ended: whatever is queued is sent, then a 1008 close with the reason;
    /// a client that does not answer the close is dropped after <see cref="ClosePatience"/>.
    /// </summary>
    private void End(string reason)
    {
        if (Interlocked.CompareExchange(ref _endReason, reason, null) is not null) return;
        _outbound.Writer.TryComplete();
        try
        {
            _lifetime?.CancelAfter(ClosePatience);
        }
        catch (ObjectDisposedException)
        {
            // the connection already ended on its own
        }
    }

    public void UnfollowAllBut(string threadId)
    {
        foreach (var other in _following.Keys.Where(k => k != threadId).ToList()) Unfollow(other);
    }

    public async ValueTask SendAsync(ApexEvent evt, CancellationToken cancellationToken)
    {
        try
        {
            await _outbound.Writer.WriteAsync(evt, cancellationToken);
        }
        catch (ChannelClosedException)
        {
            // the connection is closing (its credential ended): nothing more is sent
        }
    }

    public async Task ErrorAsync(string code, string message, CancellationToken cancellationToken)
    {
        await SendAsync(new ErrorFrame(new ErrorData(code, message)), cancellationToken);
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
            await foreach (var evt in follower.FollowAsync(User.Id, threadId, afterSeq, cancellationToken))
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
            // WaitToReadAsync and TryRead rather than ReadAllAsync: no enumerator is held for the life of an idle socket.
            while (await _outbound.Reader.WaitToReadAsync(cancellationToken))
            {
                while (_outbound.Reader.TryRead(out var queued))
                {
                    // Control frames (greeting, errors, pongs, acknowledgements) are stamped when they are sent; stored events keep their own time.
                    var evt = queued.Timestamp == default ? queued with { Timestamp = time.GetUtcNow() } : queued;
                    var bytes = JsonSerializer.SerializeToUtf8Bytes(evt, ApexJsonContext.Default.ApexEvent);
                    await socket.SendAsync(bytes, WebSocketMessageType.Text, true, cancellationToken);
                }
            }
            // The queue was closed because the credential ended: the client's answering close frame ends the receive loop.
            if (EndReason is { } reason && socket.State == WebSocketState.Open)
                await socket.CloseOutputAsync(WebSocketCloseStatus.PolicyViolation, reason, cancellationToken);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // the socket is gone; the receive loop ends the connection
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Following thread {ThreadId} failed")]
    private static partial void LogFollowFailed(ILogger logger, Exception exception, string threadId);
}
