using System.Globalization;
using System.Net.ServerSentEvents;
using System.Net.WebSockets;
using System.Runtime.CompilerServices;
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
    private static async Task<Results<ServerSentEventsResult<ApexEvent>, NotFound, ValidationProblem>> StreamEvents(string threadId, long? after,
        HttpRequest request, CurrentUser user, IThreadStore store, ThreadFollower follower, IHostApplicationLifetime lifetime, CancellationToken cancellationToken)
    {
        var cursor = after ?? 0;
        if (request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } lastEventId && !long.TryParse(lastEventId, NumberStyles.None, CultureInfo.InvariantCulture, out cursor))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["Last-Event-ID"] = ["Last-Event-ID must be a seq (a non-negative integer)."] });
        if (cursor < 0) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["after"] = ["after must not be negative."] });
        if (await store.GetThreadAsync(user.Id, threadId, cancellationToken) is null) return TypedResults.NotFound();
        return TypedResults.ServerSentEvents(Items(follower, user.Id, threadId, cursor, lifetime.ApplicationStopping, cancellationToken));

        // Shutdown ends the stream, as it closes sockets: otherwise a draining node would hold the client on a stream that no
        // longer gets the thread's events, instead of letting it resume (Last-Event-ID) on the node that takes over.
        static async IAsyncEnumerable<SseItem<ApexEvent>> Items(ThreadFollower follower, string userId, string threadId, long cursor,
            CancellationToken stopping, [EnumeratorCancellation] CancellationToken aborted)
        {
            using var both = CancellationTokenSource.CreateLinkedTokenSource(aborted, stopping);
            await using var events = follower.FollowAsync(userId, threadId, cursor, both.Token).GetAsyncEnumerator(both.Token);
            while (true)
            {
                bool more;
                try
                {
                    more = await events.MoveNextAsync();
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested && !aborted.IsCancellationRequested)
                {
                    more = false;
                }
                if (!more) yield break;
                yield return new SseItem<ApexEvent>(events.Current, events.Current.Type) { EventId = events.Current.Seq.ToString(CultureInfo.InvariantCulture) };
            }
        }
    }

    private static async Task HandleWebSocketAsync(HttpContext context, TokenService tokens, ConnectionRegistry registry, ClientProtocol protocol,
        ThreadFollower follower, IdGenerator ids, IOptions<LimitsOptions> limits, ILoggerFactory loggers,
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
        if (!registry.TryRegister(user.Id))
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
            await new WebSocketConnection(socket, user, connectionId, protocol, follower, limits.Value.MaxFrameBytes, logger).RunAsync(stopping.Token);
            if (lifetime.ApplicationStopping.IsCancellationRequested) await CloseAsync(socket, WebSocketCloseStatus.EndpointUnavailable, "server shutting down");
        }
        finally
        {
            registry.Unregister(user.Id);
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
            var (user, failure) = await tokens.ValidateAsync(header["Bearer ".Length..].Trim(), cancellationToken);
            return (user, failure, protocol);
        }
        if (offered.FirstOrDefault(p => p.StartsWith(BearerProtocolPrefix, StringComparison.Ordinal)) is { } bearer)
        {
            var (user, failure) = await tokens.ValidateAsync(bearer[BearerProtocolPrefix.Length..], cancellationToken);
            // A browser requires the server to pick one of the offered protocols; prefer ours over echoing the token.
            return (user, failure, protocol ?? bearer);
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

    [LoggerMessage(Level = LogLevel.Debug, Message = "Socket {ConnectionId} disconnected")]
    private static partial void LogDisconnected(ILogger logger, string connectionId);
}
