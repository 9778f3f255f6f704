using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Streaming;

public sealed class HeartbeatTests
{
    /// <summary>
    /// A client that completes the WebSocket handshake by hand and then never answers a ping: the server pings it
    /// and, once the idle timeout passes without a pong, closes the connection.
    /// </summary>
    [Fact]
    public async Task TheServerPingsIdleSocketsAndClosesDeadOnes()
    {
        await using var server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Limits:ToolTimeout"] = "00:00:01",
            ["Apex:Limits:AgentTimeout"] = "00:00:01",
            ["Apex:Limits:RunTimeout"] = "00:00:01",
            ["Apex:Limits:SocketKeepAliveInterval"] = "00:00:00.500",
            ["Apex:Limits:SocketIdleTimeout"] = "00:00:02",
        });
        var ct = Waits.Timeout();
        using var client = await server.NewUserAsync();

        using var tcp = new TcpClient();
        await tcp.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port, ct);
        var stream = tcp.GetStream();
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));
        var handshake = $"GET /ws HTTP/1.1\r\nHost: {server.BaseAddress.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                        $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {client.Tokens!.AccessToken}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(handshake), ct);

        var received = new List<byte>();
        var buffer = new byte[4096];
        // Read everything the server sends, answering nothing, until it drops the connection (an end of stream or,
        // as Kestrel aborts a dead socket, a reset). A server that never closed it would fail the test at the timeout.
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, ct)) > 0) received.AddRange(buffer.AsSpan(0, read).ToArray());
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
        }

        var bytes = received.ToArray();
        var headerEnd = IndexOf(bytes, "\r\n\r\n"u8.ToArray());
        Assert.StartsWith("HTTP/1.1 101", Encoding.ASCII.GetString(bytes, 0, headerEnd), StringComparison.Ordinal);
        var opcodes = Frames(bytes.AsSpan(headerEnd + 4).ToArray());
        Assert.Equal(0x1, opcodes[0]); // connection_established, as text
        Assert.Contains(0x9, opcodes); // the server's ping, never answered
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (var i = 0; i <= haystack.Length - needle.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }

    /// <summary>The opcodes of the unmasked server frames in a byte run.</summary>
    private static List<int> Frames(byte[] data)
    {
        var opcodes = new List<int>();
        var i = 0;
        while (i + 2 <= data.Length)
        {
            opcodes.Add(data[i] & 0x0F);
            long length = data[i + 1] & 0x7F;
            i += 2;
            if (length == 126) { length = (data[i] << 8) | data[i + 1]; i += 2; }
            else if (length == 127) { length = (long)BitConverter.ToUInt64(data.AsSpan(i, 8).ToArray().Reverse().ToArray()); i += 8; }
            i += (int)length;
        }
        return opcodes;
    }
}
