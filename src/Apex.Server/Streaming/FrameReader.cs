using System.Buffers;
using System.Net.WebSockets;

namespace Apex.Server.Streaming;

/// <summary>One client frame as read from the socket: its text, or why there is none.</summary>
internal abstract record Frame
{
    private Frame() { }

    /// <summary>A complete text frame within the size limit; <see cref="Dispose"/> returns its buffer.</summary>
    public sealed record Text(byte[] Buffer, int Length) : Frame, IDisposable
    {
        public ReadOnlyMemory<byte> Utf8 => Buffer.AsMemory(0, Length);

        public void Dispose() => ArrayPool<byte>.Shared.Return(Buffer);
    }

    public sealed record TooLarge : Frame;

    public sealed record Binary : Frame;

    /// <summary>The client closed the socket (the close has been answered).</summary>
    public sealed record Closed : Frame;
}

/// <summary>
/// Reads client frames within the frame size limit. It waits for the next frame with a zero-byte read, so an idle
/// socket holds no receive buffer; a frame over the limit is read to its end and discarded.
/// </summary>
internal sealed class FrameReader(WebSocket socket, int maxFrameBytes)
{
    public async Task<Frame> ReadAsync(CancellationToken cancellationToken)
    {
        var waiting = await socket.ReceiveAsync(Memory<byte>.Empty, cancellationToken);
        if (waiting.MessageType == WebSocketMessageType.Close) return await ClosedAsync(cancellationToken);
        var buffer = ArrayPool<byte>.Shared.Rent(maxFrameBytes + 1);
        var keep = false;
        try
        {
            var length = 0;
            var tooLarge = false;
            var result = waiting;
            while (!result.EndOfMessage)
            {
                // Once over the limit, keep reading into the start of the buffer only to discard the rest of the frame.
                var target = tooLarge ? buffer.AsMemory() : buffer.AsMemory(length, buffer.Length - length);
                result = await socket.ReceiveAsync(target, cancellationToken);
                if (result.MessageType == WebSocketMessageType.Close) return await ClosedAsync(cancellationToken);
                if (tooLarge) continue;
                length += result.Count;
                tooLarge = length > maxFrameBytes;
            }
            if (tooLarge) return new Frame.TooLarge();
            if (result.MessageType != WebSocketMessageType.Text) return new Frame.Binary();
            keep = true;
            return new Frame.Text(buffer, length);
        }
        finally
        {
            if (!keep) ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task<Frame> ClosedAsync(CancellationToken cancellationToken)
    {
        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cancellationToken);
        return new Frame.Closed();
    }
}
