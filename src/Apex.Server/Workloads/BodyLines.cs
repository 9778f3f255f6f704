using System.Buffers;
using System.IO.Pipelines;
using System.Text;

namespace Apex.Server.Workloads;

/// <summary>One read of <see cref="BodyLines"/>.</summary>
internal abstract record BodyLine
{
    private BodyLine() { }

    /// <summary>A line (1-based number, without its line break), decoded as UTF-8.</summary>
    public sealed record Text(int Number, string Value) : BodyLine;

    /// <summary>The body ended.</summary>
    public sealed record End : BodyLine;

    /// <summary>The body is longer than the upload limit.</summary>
    public sealed record TooLarge(long Limit) : BodyLine;

    /// <summary>The body cannot be read as lines of text (bad UTF-8, a line too long).</summary>
    public sealed record Unreadable(string Reason) : BodyLine;
}

/// <summary>
/// A request body read line by line from its pipe: memory holds one line (at most <see cref="MaxLineBytes"/>) and what
/// the pipe has buffered, never the body. Counts the bytes against the upload limit as it goes.
/// </summary>
internal sealed class BodyLines(PipeReader reader, long maxBytes)
{
    public const int MaxLineBytes = 64 * 1024;

    private static readonly UTF8Encoding Utf8 = new(false, throwOnInvalidBytes: true);
    private long _consumed;
    private int _number;

    public async ValueTask<BodyLine> ReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            var newline = buffer.PositionOf((byte)'\n');
            if (newline is null && !result.IsCompleted)
            {
                if (buffer.Length > MaxLineBytes) return Stop(buffer, new BodyLine.Unreadable($"Line {_number + 1} is longer than {MaxLineBytes} bytes."));
                if (_consumed + buffer.Length > maxBytes) return Stop(buffer, new BodyLine.TooLarge(maxBytes));
                reader.AdvanceTo(buffer.Start, buffer.End);
                continue;
            }
            if (newline is null && buffer.Length == 0) return Stop(buffer, new BodyLine.End());
            var line = newline is { } at ? buffer.Slice(0, at) : buffer;
            var next = newline is { } end ? buffer.GetPosition(1, end) : buffer.End;
            var start = _consumed;
            _number++;
            _consumed += buffer.Slice(0, next).Length;
            if (_consumed > maxBytes) return Stop(buffer, new BodyLine.TooLarge(maxBytes));
            if (line.Length > MaxLineBytes) return Stop(buffer, new BodyLine.Unreadable($"Line {_number} is longer than {MaxLineBytes} bytes."));
            string text;
            try
            {
                text = Utf8.GetString(line);
            }
            catch (DecoderFallbackException ex)
            {
                return Stop(buffer, new BodyLine.Unreadable($"The file is not valid UTF-8 (bad byte at offset {start + Math.Max(ex.Index, 0)})."));
            }
            reader.AdvanceTo(next);
            if (_number == 1 && text.Length > 0 && text[0] == '\uFEFF') text = text[1..];
            return new BodyLine.Text(_number, text.TrimEnd('\r'));
        }
    }

    private BodyLine Stop(ReadOnlySequence<byte> buffer, BodyLine outcome)
    {
        reader.AdvanceTo(buffer.Start, buffer.End);
        return outcome;
    }
}
