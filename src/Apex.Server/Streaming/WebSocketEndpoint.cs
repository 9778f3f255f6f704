using System.Net.WebSockets;
using Apex.Server.Auth;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Microsoft.Extensions.Options;

namespace Apex.Server.Streaming;

/// <summary>
/// <c>/ws</c>: authenticates the upgrade (a single-use ticket, a bearer header or a bearer subprotocol), takes the user's
/// connection place and runs the <see cref="WebSocketConnection"/> until either side ends it. One instance serves every
/// socket, built from singletons, so a socket that stays open for hours holds no request scope of its own.
/// </summary>
internal sealed partial class WebSocketEndpoint(TokenService tokens, ConnectionRegistry registry, ClientProtocol protocol, ThreadFollower follower,
    SessionWatch sessions, IdGenerator ids, TimeProvider time, IOptions<LimitsOptions> limits, ILoggerFactory loggers, IHostApplicationLifetime lifetime)
{
    public const string Subprotocol = "apex.v1";
    private const string BearerProtocolPrefix = "bearer.";
    private readonly ILogger _logger = loggers.CreateLogger("Apex.Server.Streaming.WebSocket");

    public async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await TypedResults.Problem(statusCode: StatusCodes.Status400BadRequest, title: "WebSocket required",
                detail: "Connect to /ws with a WebSocket client.").ExecuteAsync(context);
            return;
        }
        var (user, failure, subprotocol) = await AuthenticateAsync(context);
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
        var connectionId = ids.NewId();
        LogConnected(_logger, connectionId, user.Id);
        try
        {
            var connection = new WebSocketConnection(socket, user, connectionId, protocol, follower, sessions, time, limits.Value.MaxFrameBytes,
                limits.Value.MaxFollowsPerConnection, _logger);
            await connection.RunAsync(context.RequestAborted, lifetime.ApplicationStopping);
            if (connection.EndReason is { } reason) LogCredentialEnded(_logger, connectionId, reason);
            else if (lifetime.ApplicationStopping.IsCancellationRequested) await CloseAsync(socket, WebSocketCloseStatus.EndpointUnavailable, "server shutting down");
        }
        finally
        {
            LogDisconnected(_logger, connectionId);
        }
    }

    /// <summary>A single-use ticket (<c>?ticket=</c>), a bearer header, or a <c>bearer.&lt;token&gt;</c> subprotocol, in that order.</summary>
    private async Task<(CurrentUser? User, string? Failure, string? Protocol)> AuthenticateAsync(HttpContext context)
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
