using System.Globalization;
using System.Net.ServerSentEvents;
using System.Net.WebSockets;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Apex.Server.Events;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace Apex.Server.Streaming;

internal static partial class StreamingEndpoints
{
    public const string Subprotocol = "apex.v1";
    private const string BearerProtocolPrefix = "bearer.";

    public static IEndpointRouteBuilder MapStreamingEndpoints(this IEndpointRouteBuilder app)
    {
        app.Map("/ws", HandleWebSocketAsync).WithTags("Streaming").ExcludeFromDescription();
        app.MapGet("/api/threads/{threadId}/events", StreamEvents).RequireAuthorization().WithTags("Streaming");
        return app;
    }

    /// <summary>
    /// The thread's events as SSE, from <c>Last-Event-ID</c> (or <c>?after=</c>, or the start), then live.
    /// The event id is the seq, so a reconnecting EventSource resumes exactly where it stopped.
    /// </summary>
    private static async Task<Results<ServerSentEventsResult<ApexEvent>, NotFound, ValidationProblem, ProblemHttpResult>> StreamEvents(string threadId, long? after,
        HttpContext context, CurrentUser user, IThreadStore store, ThreadFollower follower, SessionWatch sessions, ConnectionRegistry registry, TimeProvider time,
        IHostApplicationLifetime lifetime, CancellationToken cancellationToken)
    {
        var request = context.Request;
        var cursor = after ?? 0;
        if (request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } lastEventId && !long.TryParse(lastEventId, NumberStyles.None, CultureInfo.InvariantCulture, out cursor))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["Last-Event-ID"] = ["Last-Event-ID must be a seq (a non-negative integer)."] });
        if (cursor < 0) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["after"] = ["after must not be negative."] });
        if (await store.GetThreadAsync(user.Id, threadId, cancellationToken) is null) return TypedResults.NotFound();
        if (await registry.TryRegisterAsync(StreamKind.Sse, user.Id, cancellationToken) is not { } place)
            return TypedResults.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "too_many_streams",
                detail: $"At most {registry.Limit(StreamKind.Sse)} open event streams per user; close one first.");
        // Watched from before the response starts, and released when it ends, however it ends.
        // Shutdown ends the stream, as it closes sockets: otherwise a draining node would hold the client on a stream that no
        // longer gets the thread's events, instead of letting it resume (Last-Event-ID) on the node that takes over.
        var lease = new SseLease(place, cancellationToken, lifetime.ApplicationStopping);
        context.Response.RegisterForDispose(lease);
        lease.Watch(sessions, user);
        return TypedResults.ServerSentEvents(Items(context.Response, user, threadId, cursor, follower, lease, time));
    }

    /// <summary>
    /// The thread's events until the client leaves or its credential ends: a revoked session or an expired token ends
    /// the stream with an <c>error</c> event (<c>session_revoked</c> / <c>token_expired</c>, no id, so a reconnect with
    /// a fresh token resumes from the last seq seen).
    /// </summary>
    private static async IAsyncEnumerable<SseItem<ApexEvent>> Items(HttpResponse response, CurrentUser user, string threadId, long cursor, ThreadFollower follower, SseLease lease,
        TimeProvider time)
    {
        // The headers go out now, not with the first event: a client knows at once that its stream is open (and watched).
        await response.Body.FlushAsync(lease.Token);
        var events = follower.FollowAsync(user.Id, threadId, cursor, lease.Token).GetAsyncEnumerator(lease.Token);
        await using (events)
        {
            while (true)
            {
                bool more;
                try
                {
                    more = await events.MoveNextAsync();
                }
                catch (OperationCanceledException) when (lease.EndReason is not null || lease.Stopping)
                {
                    more = false;
                }
                if (!more) break;
                yield return new SseItem<ApexEvent>(events.Current, events.Current.Type) { EventId = events.Current.Seq.ToString(CultureInfo.InvariantCulture) };
            }
        }
        if (lease.EndReason is { } reason)
        {
            var code = reason == SessionWatch.RevokedReason ? "session_revoked" : "token_expired";
            yield return new SseItem<ApexEvent>(new ErrorFrame(new ErrorData(code, reason)) { ThreadId = threadId, UserId = user.Id, Timestamp = time.GetUtcNow() }, EventTypes.Error);
        }
    }

    /// <summary>One open SSE stream: its place within the user's limit, and the end of its credential.</summary>
    private sealed class SseLease(IDisposable place, CancellationToken requestAborted, CancellationToken stopping) : IDisposable
    {
        private readonly CancellationTokenSource _ended = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, stopping);

        public bool Stopping => stopping.IsCancellationRequested && !requestAborted.IsCancellationRequested;
        private IDisposable? _watch;
        private string? _endReason;
        private int _released;

        public CancellationToken Token => _ended.Token;

        public string? EndReason => Volatile.Read(ref _endReason);

        public void Watch(SessionWatch sessions, CurrentUser user) => _watch = sessions.Watch(user, reason =>
        {
            if (Interlocked.CompareExchange(ref _endReason, reason, null) is not null) return;
            try { _ended.Cancel(); } catch (ObjectDisposedException) { }
        });

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return;
            _watch?.Dispose();
            place.Dispose();
            _ended.Dispose();
        }
    }

    private static async Task HandleWebSocketAsync(HttpContext context, TokenService tokens, ConnectionRegistry registry, ClientProtocol protocol,
        ThreadFollower follower, SessionWatch sessions, IdGenerator ids, TimeProvider time, IOptions<LimitsOptions> limits, ILoggerFactory loggers,
        IHostApplicationLifetime lifetime)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "WebSocket required",
                detail: "Connect to /ws with a WebSocket client.").ExecuteAsync(context);
            return;
        }
        var (user, failure, subprotocol) = await AuthenticateAsync(context, tokens);
        using var socket = await context.WebSockets.AcceptWebSocketAsync(subprotocol);
        if (user is null)
        {
            await CloseAsync(socket, WebSocketCloseStatus.PolicyViolation, failure!);
            return;
        }
        using var place = await registry.TryRegisterAsync(StreamKind.Socket, user.Id, context.RequestAborted);
        if (place is null)
        {
            await CloseAsync(socket, WebSocketCloseStatus.PolicyViolation, $"At most {limits.Value.MaxConnectionsPerUser} connections per user.");
            return;
        }
        var logger = loggers.CreateLogger("Apex.Server.Streaming.WebSocket");
        var connectionId = ids.NewId();
        LogConnected(logger, connectionId, user.Id);
        try
        {
            using var stopping = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
            var connection = new WebSocketConnection(socket, user, connectionId, protocol, follower, sessions, time, limits.Value.MaxFrameBytes, limits.Value.MaxFollowsPerConnection, logger);
            await connection.RunAsync(stopping.Token);
            if (connection.EndReason is { } reason) LogCredentialEnded(logger, connectionId, reason);
            else if (lifetime.ApplicationStopping.IsCancellationRequested) await CloseAsync(socket, WebSocketCloseStatus.EndpointUnavailable, "server shutting down");
        }
        finally
        {
            LogDisconnected(logger, connectionId);
        }
    }

    /// <summary>A single-use ticket (<c>?ticket=</c>), a bearer header, or a <c>bearer.&lt;token&gt;</c> subprotocol, in that order.</summary>
    private static async Task<(CurrentUser? User, string? Failure, string? Protocol)> AuthenticateAsync(HttpContext context, TokenService tokens)
    {
        var offered = context.WebSockets.WebSocketRequestedProtocols;
        var protocol = offered.Contains(Subprotocol) ? Subprotocol : null;
        var cancellationToken = context.RequestAborted;
        if (context.Request.Query["ticket"].ToString() is { Length: > 0 } ticket)
        {
            var user = await tokens.RedeemTicketAsync(ticket, cancellationToken);
            return (user, user is null ? "invalid or expired ticket" : null, protocol);
        }
        var header = context.Request.Headers.Authorization.ToString();
        if (header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var (user, failure) = await tokens.ValidateAsync(header["Bearer ".Length..].Trim(), context.Connection.RemoteIpAddress?.ToString(), cancellationToken);
            return (user, failure, protocol);
        }
        if (offered.FirstOrDefault(p => p.StartsWith(BearerProtocolPrefix, StringComparison.Ordinal)) is { } bearer)
        {
            // A browser requires the server to pick one of the offered protocols, and the token must never be the one
            // picked (it would be echoed in the response header): the client offers apex.v1 alongside it.
            if (protocol is null) return (null, "offer the apex.v1 subprotocol alongside bearer.<token>", null);
            var (user, failure) = await tokens.ValidateAsync(bearer[BearerProtocolPrefix.Length..], context.Connection.RemoteIpAddress?.ToString(), cancellationToken);
            return (user, failure, protocol);
        }
        return (null, "authentication required: use ?ticket=, a bearer header or a bearer.<token> subprotocol", protocol);
    }

    private static async Task CloseAsync(WebSocket socket, WebSocketCloseStatus status, string reason)
    {
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived)) return;
        // Close reasons are limited to 123 bytes by the protocol.
        var text = reason.Length > 120 ? reason[..120] : reason;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        try
        {
            await socket.CloseAsync(status, text, timeout.Token);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
            // the peer did not answer the close handshake: the socket is closed either way
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Socket {ConnectionId} connected for user {UserId}")]
    private static partial void LogConnected(ILogger logger, string connectionId, string userId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Socket {ConnectionId} closed: {Reason}")]
    private static partial void LogCredentialEnded(ILogger logger, string connectionId, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Socket {ConnectionId} disconnected")]
    private static partial void LogDisconnected(ILogger logger, string connectionId);
}
