using Apex.Server.Storage;
using Apex.Tests.Infrastructure;
using Microsoft.Data.Sqlite;

namespace Apex.Tests.Storage;

/// <summary>
/// SQLite writes that queue while a transaction runs share the next one (each in a savepoint of its own): a write that
/// fails is rolled back alone, a write whose caller gave up before its turn is not run, and when the shared transaction
/// is lost the writes in it run again one by one, each exactly once.
/// </summary>
public sealed class GroupCommitTests() : SqliteDatabaseTests("CREATE TABLE items (id INTEGER PRIMARY KEY)")
{
    [Fact]
    public async Task WritesQueuedBehindATransactionShareTheNextAndOneThatFailsIsRolledBackAlone()
    {
        var (blocker, release) = await BlockTheWriterAsync();
        var visibleToReaders = new bool[10];
        var writes = Enumerable.Range(1, 10).Select(i => Db.WriteAsync(async (c, t) =>
        {
            await c.ExecuteAsync("INSERT INTO items (id) VALUES (@id)", t, default, ("@id", (long)i));
            // A reader sees what another write of this transaction did only once the whole group is committed.
            if (i > 1)
            {
                await using var reader = await Db.OpenAsync(default);
                visibleToReaders[i - 1] = await reader.ScalarAsync("SELECT COUNT(*) FROM items WHERE id = 1", null, default) == 1;
            }
            if (i == 4) throw new InvalidOperationException("write 4 fails");
            // A constraint failure inside the work: the row of write 1 again.
            if (i == 7) await c.ExecuteAsync("INSERT INTO items (id) VALUES (1)", t, default);
            return i;
        }, default)).ToList();
        release.SetResult();
        await blocker;

        Assert.Equal("write 4 fails", (await Assert.ThrowsAsync<InvalidOperationException>(() => writes[3])).Message);
        await Assert.ThrowsAsync<SqliteException>(() => writes[6]);
        foreach (var i in new[] { 1, 2, 3, 5, 6, 8, 9, 10 }) Assert.Equal(i, await writes[i - 1]);
        Assert.Equal(new long[] { 0, 1, 2, 3, 5, 6, 8, 9, 10 }, await IdsAsync());
        // They ran in one transaction: none of them saw write 1's row from outside before the commit.
        Assert.All(visibleToReaders, Assert.False);
    }

    [Fact]
    public async Task AWriteWhoseCallerGaveUpBeforeItsTurnIsNotRun()
    {
        var (blocker, release) = await BlockTheWriterAsync();
        using var giveUp = new CancellationTokenSource();
        var abandoned = Db.WriteAsync(async (c, t) => await c.ExecuteAsync("INSERT INTO items (id) VALUES (1)", t, default), giveUp.Token);
        var kept = Db.WriteAsync(async (c, t) => await c.ExecuteAsync("INSERT INTO items (id) VALUES (2)", t, default), default);
        await giveUp.CancelAsync();
        release.SetResult();
        await blocker;

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        Assert.Equal(1, await kept);
        Assert.Equal(new long[] { 0, 2 }, await IdsAsync());
    }

    [Fact]
    public async Task WhenTheSharedTransactionIsLostEveryWriteInItRunsAgainAloneExactlyOnce()
    {
        var (blocker, release) = await BlockTheWriterAsync();
        var runs = new int[5];
        var writes = Enumerable.Range(1, 5).Select(i => Db.WriteAsync(async (c, t) =>
        {
            Interlocked.Increment(ref runs[i - 1]);
            await c.ExecuteAsync("INSERT INTO items (id) VALUES (@id)", t, default, ("@id", (long)i));
            // Write 3 ends the transaction it runs in, as SQLite itself does on a full disk or an I/O error.
            if (i == 3) await c.ExecuteAsync("ROLLBACK", t, default);
            return i;
        }, default)).ToList();
        release.SetResult();
        await blocker;

        foreach (var i in new[] { 1, 2, 4, 5 }) Assert.Equal(i, await writes[i - 1]);
        // Alone, write 3 still ends its own transaction: its commit fails, and only its caller hears it.
        await Assert.ThrowsAsync<SqliteException>(() => writes[2]);
        // Writes 1-3 ran in the lost transaction and again alone; 4 and 5 were not reached before it was lost.
        Assert.Equal(new[] { 2, 2, 2, 1, 1 }, runs);
        Assert.Equal(new long[] { 0, 1, 2, 4, 5 }, await IdsAsync());
    }

    /// <summary>A write that holds the writer (its row is id 0) until released, so that the writes after it queue.</summary>
    private async Task<(Task Blocker, TaskCompletionSource Release)> BlockTheWriterAsync()
    {
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocker = Db.WriteAsync(async (c, t) =>
        {
            await c.ExecuteAsync("INSERT INTO items (id) VALUES (0)", t, default);
            running.SetResult();
            await release.Task.WaitAsync(Waits.Timeout());
            return 0;
        }, default);
        await running.Task.WaitAsync(Waits.Timeout());
        return (blocker, release);
    }

    private async Task<long[]> IdsAsync()
    {
        await using var reader = await Db.OpenAsync(default);
        return [.. await reader.QueryAsync("SELECT id FROM items ORDER BY id", null, r => r.GetInt64(0), default)];
    }
}
