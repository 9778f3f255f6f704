using Apex.Server.Storage;
using Microsoft.Extensions.Time.Testing;

namespace Apex.Tests.Storage;

public sealed class IdGeneratorTests
{
    [Fact]
    public void IdsAreIncreasingVersion7UuidsWithFreshRandomBitsPastTheBufferedBytes()
    {
        // The clock stands still, so order comes from the counter alone; 2,000 ids pass the 512-id random buffer three times.
        var ids = new IdGenerator(new FakeTimeProvider(DateTimeOffset.UtcNow));
        var made = Enumerable.Range(0, 2000).Select(_ => ids.NewId()).ToList();

        Assert.Equal(made.Order(StringComparer.Ordinal), made);
        Assert.Equal(made.Count, made.Distinct().Count());
        Assert.All(made, id =>
        {
            var guid = Guid.ParseExact(id, "D");
            Assert.Equal(7, guid.Version);
            Assert.InRange(guid.Variant, 0x8, 0xB); // RFC 9562: 0b10xx
        });
        // The 62 random bits differ from one id to the next, including where the buffer is refilled.
        var randomParts = made.Select(id => id[19..]).ToList();
        Assert.Equal(randomParts.Count, randomParts.Distinct().Count());
    }
}
