using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>
/// SQLite connections keep their statements prepared by SQL text, and readers go back to the database's pool when
/// disposed: a reused statement must bind this call's values (a null after a number, a number after a null), a nested
/// use of the same SQL must get a command of its own, and a reader left inside a transaction must not be handed out again.
/// </summary>
public sealed class PreparedStatementTests() : SqliteDatabaseTests(
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)",
    "INSERT INTO items (id, name) VALUES (1, 'one'), (2, NULL), (3, 'three')")
{
    [Fact]
    public async Task AReusedStatementBindsEachCallsValues()
    {
        const string sql = "SELECT COUNT(*) FROM items WHERE (@name IS NULL AND name IS NULL) OR name = @name OR id = @id";
        for (var round = 0; round < 3; round++)
        {
            await using var connection = await Db.OpenAsync(default);
            // A null first, then a number in the same slot: the kept command binds this call's values, not an earlier call's.
            Assert.Equal(1, await connection.ScalarAsync(sql, null, default, ("@name", null), ("@id", 0L)));
            Assert.Equal(2, await connection.ScalarAsync(sql, null, default, ("@name", "one"), ("@id", 3L)));
            Assert.Equal(1, await connection.ScalarAsync("SELECT COUNT(*) FROM items WHERE id = @id", null, default, ("@id", 2L)));
            Assert.Equal(0, await connection.ScalarAsync("SELECT COUNT(*) FROM items WHERE id = @id", null, default, ("@id", "2x")));
            // What SQLite was given, without a column's affinity to convert it: the type of this call's value each time.
            Assert.Equal("null", await connection.QuerySingleAsync("SELECT typeof(@v)", null, r => r.GetString(0), default, ("@v", null)));
            Assert.Equal("integer", await connection.QuerySingleAsync("SELECT typeof(@v)", null, r => r.GetString(0), default, ("@v", 5L)));
            Assert.Equal("text", await connection.QuerySingleAsync("SELECT typeof(@v)", null, r => r.GetString(0), default, ("@v", "5")));
        }
    }

    [Fact]
    public async Task TheSameStatementInsideItsOwnReadGetsACommandOfItsOwn()
    {
        const string sql = "SELECT name FROM items WHERE id = @id";
        await using var connection = await Db.OpenAsync(default);
        var outer = connection.RentCommand(null, sql, "@id");
        try
        {
            outer.Parameters[0].Value = 1L;
            await using var reader = await outer.ExecuteReaderAsync();
            Assert.True(await reader.ReadAsync());
            // While the outer command is still reading, the same SQL again: a second command, with its own values.
            Assert.Equal("three", await connection.QuerySingleAsync(sql, null, r => r.GetString(0), default, ("@id", 3L)));
            Assert.Equal("one", reader.GetString(0));
        }
        finally
        {
            await outer.ReturnCommandAsync();
        }
    }

    [Fact]
    public async Task AReaderIsReusedButNotOneLeftInsideATransaction()
    {
        var first = await Db.OpenAsync(default);
        await first.DisposeAsync();
        // Disposed twice by its holder: given back once, so two renters never share it.
        await first.DisposeAsync();
        var second = await Db.OpenAsync(default);
        Assert.Same(first, second);
        var other = await Db.OpenAsync(default);
        Assert.NotSame(second, other);
        await other.DisposeAsync();
        Assert.Equal(System.Data.ConnectionState.Open, second.State);

        await second.ExecuteAsync("BEGIN", null, default);
        await second.DisposeAsync();
        var third = await Db.OpenAsync(default);
        Assert.NotSame(second, third);
        Assert.Equal(System.Data.ConnectionState.Closed, second.State);
        // The fresh reader sees committed rows and is not inside the abandoned transaction.
        Assert.Equal(3, await third.ScalarAsync("SELECT COUNT(*) FROM items", null, default));
        await third.DisposeAsync();
    }
}
