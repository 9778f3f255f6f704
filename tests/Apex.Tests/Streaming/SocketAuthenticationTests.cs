using System.Net.WebSockets;
using Apex.Client;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Apex.Tests.Streaming;

public sealed class SocketAuthenticationTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApexTestServer Server => shared.Server;

    private Uri WsUri(string query = "") => new UriBuilder(new Uri(Server.BaseAddress, "ws")) { Scheme = "ws", Query = query }.Uri;

    private static async Task<(WebSocketCloseStatus? Status, string? Reason)> ClosedWithAsync(ClientWebSocket socket, CancellationToken ct)
    {
        var buffer = new byte[1024];
        var result = await socket.ReceiveAsync(buffer, ct);
        Assert.Equal(WebSocketMessageType.Close, result.MessageType);
        return (socket.CloseStatus, socket.CloseStatusDescription);
    }

    [Fact]
    public async Task APlainRequestToTheSocketIsABadRequestProblemWithTheUsualHeaders()
    {
        // The socket endpoint is short-circuited past authentication: it must still get the error pages and the headers
        // every answer carries, which run before routing.
        var ct = Waits.Timeout();
        using var http = new HttpClient { BaseAddress = Server.BaseAddress };
        using var answer = await http.GetAsync("ws", ct);
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, answer.StatusCode);
        Assert.Equal("application/problem+json", answer.Content.Headers.ContentType?.MediaType);
        Assert.Equal("nosniff", answer.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Contains("WebSocket required", await answer.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnauthenticatedSocketIsClosedWithPolicyViolation()
    {
        var ct = Waits.Timeout();
        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(WsUri(), ct);
        var (status, reason) = await ClosedWithAsync(socket, ct);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Contains("authentication required", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TicketIsSingleUse()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var ticket = await client.GetWsTicketAsync(ct);

        using var first = new ClientWebSocket();
        await first.ConnectAsync(WsUri("ticket=" + Uri.EscapeDataString(ticket)), ct);
        var greeting = await new ApexSocket(first).ReceiveAsync(ct);
        Assert.IsType<ConnectionEstablished>(greeting);

        using var second = new ClientWebSocket();
        await second.ConnectAsync(WsUri("ticket=" + Uri.EscapeDataString(ticket)), ct);
        var (status, reason) = await ClosedWithAsync(second, ct);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Contains("ticket", reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task BearerHeaderAndBearerSubprotocolAreAccepted()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();

        using var viaHeader = new ClientWebSocket();
        viaHeader.Options.SetRequestHeader("Authorization", "Bearer " + client.Tokens!.AccessToken);
        await viaHeader.ConnectAsync(WsUri(), ct);
        Assert.IsType<ConnectionEstablished>(await new ApexSocket(viaHeader).ReceiveAsync(ct));

        using var viaProtocol = new ClientWebSocket();
        viaProtocol.Options.AddSubProtocol("apex.v1");
        viaProtocol.Options.AddSubProtocol("bearer." + client.Tokens.AccessToken);
        await viaProtocol.ConnectAsync(WsUri(), ct);
        Assert.Equal("apex.v1", viaProtocol.SubProtocol);
        var established = Assert.IsType<ConnectionEstablished>(await new ApexSocket(viaProtocol).ReceiveAsync(ct));
        Assert.Equal(client.Tokens.User.Id, established.Data.UserId);
    }

    [Fact]
    public async Task ForgedTokenIsClosedWithPolicyViolation()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var forged = client.Tokens!.AccessToken[..^4] + (client.Tokens.AccessToken.EndsWith("AAAA", StringComparison.Ordinal) ? "BBBB" : "AAAA");
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + forged);
        await socket.ConnectAsync(WsUri(), ct);
        var (status, reason) = await ClosedWithAsync(socket, ct);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, status);
        Assert.Equal("invalid signature", reason);
    }

    [Fact]
    public async Task ExpiredTokenAndExpiredTicketAreClosedWithPolicyViolation()
    {
        var clock = new ShiftableTimeProvider();
        await using var server = await ApexTestServer.StartAsync(services: s => s.AddSingleton<TimeProvider>(clock));
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();
        var ticket = await client.GetWsTicketAsync(ct);
        clock.Advance(TimeSpan.FromMinutes(16));

        using var bearer = new ClientWebSocket();
        bearer.Options.SetRequestHeader("Authorization", "Bearer " + client.Tokens!.AccessToken);
        await bearer.ConnectAsync(new UriBuilder(new Uri(server.BaseAddress, "ws")) { Scheme = "ws" }.Uri, ct);
        var buffer = new byte[256];
        Assert.Equal(WebSocketMessageType.Close, (await bearer.ReceiveAsync(buffer, ct)).MessageType);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, bearer.CloseStatus);
        Assert.Equal("token expired", bearer.CloseStatusDescription);

        using var withTicket = new ClientWebSocket();
        await withTicket.ConnectAsync(new UriBuilder(new Uri(server.BaseAddress, "ws")) { Scheme = "ws", Query = "ticket=" + Uri.EscapeDataString(ticket) }.Uri, ct);
        Assert.Equal(WebSocketMessageType.Close, (await withTicket.ReceiveAsync(buffer, ct)).MessageType);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, withTicket.CloseStatus);

        // The refresh token still works after the access token expired.
        await client.RefreshAsync(ct);
        using var fresh = await client.ConnectAsync(ct);
        Assert.NotNull(fresh.Established);
    }
}
