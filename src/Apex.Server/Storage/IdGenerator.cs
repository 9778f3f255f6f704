using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Apex.Server.Storage;

/// <summary>
/// Sortable ids: UUIDv7 whose 12-bit <c>rand_a</c> field is a counter within the millisecond
/// (RFC 9562, method 1), so ids made by one node are strictly increasing. Runs and messages
/// are ordered by id, so order of creation is order of execution.
/// </summary>
internal sealed class IdGenerator(TimeProvider time)
{
    /// <summary>
    /// Random bytes for 512 ids, taken from the cryptographic generator at once: one call for each id cost ~1.8 µs (an
    /// OpenSSL DRBG call with its locks), and every stored event has an id.
    /// </summary>
    private const int RandomBytes = 4096;

    private readonly Lock _gate = new();
    private readonly byte[] _random = new byte[RandomBytes];
    private int _randomAt = RandomBytes;
    private long _lastMs;
    private int _counter;

    public string NewId()
    {
        long ms;
        int counter;
        Span<byte> bytes = stackalloc byte[16];
        lock (_gate)
        {
            if (_randomAt == RandomBytes)
            {
                RandomNumberGenerator.Fill(_random);
                _randomAt = 0;
            }
            _random.AsSpan(_randomAt, 8).CopyTo(bytes[8..]);
            _randomAt += 8;
            ms = Math.Max(time.GetUtcNow().ToUnixTimeMilliseconds(), _lastMs);
            if (ms == _lastMs)
            {
                if (++_counter > 0xFFF) { ms++; _counter = 0; }
            }
            else
            {
                _counter = 0;
            }
            _lastMs = ms;
            counter = _counter;
        }

        BinaryPrimitives.WriteInt64BigEndian(bytes, ms << 16);
        bytes[6] = (byte)(0x70 | (counter >> 8));
        bytes[7] = (byte)counter;
        bytes[8] = (byte)(0x80 | (bytes[8] & 0x3F));
        return new Guid(bytes, bigEndian: true).ToString();
    }
}
