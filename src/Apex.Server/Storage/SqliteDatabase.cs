using System.Collections.Concurrent;
using System.Data.Common;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;

namespace Apex.Server.Storage;

/// <summary>
/// The embedded default: one SQLite file in WAL mode. SQLite allows one writer at a time, so
/// writes queue here for one writer connection (and share its transactions) instead of spinning on SQLITE_BUSY inside the driver.
/// </summary>
internal sealed class SqliteDatabase : Database
{
    private readonly string _connectionString;
    private readonly string _path;
    private readonly SemaphoreSlim _bulkLock = new(1, 1);
    private PreparingSqliteConnection? _writer;

    /// <summary>How many idle readers are kept open with their prepared statements; readers past these are closed when given back.</summary>
    private const int IdleReaders = 16;
    private readonly ConcurrentStack<PreparingSqliteConnection> _readers = new();
    private int _idleReaders;
    private volatile bool _disposed;

    public SqliteDatabase(string? configured)
    {
        var value = string.IsNullOrWhiteSpace(configured) ? Path.Combine("data", "apex.db") : configured;
        var builder = value.Contains('=') ? new SqliteConnectionStringBuilder(value) : new SqliteConnectionStringBuilder { DataSource = value };
        builder.Pooling = true;
        builder.DefaultTimeout = 30;
        _path = Path.GetFullPath(builder.DataSource);
        builder.DataSource = _path;
        Protect(_path);
        _connectionString = builder.ToString();
        // The writer loop waits for the first write; it runs in no caller's execution context (no request's trace or log scope).
        using (ExecutionContext.SuppressFlow()) _writing = Task.Run(WriteLoopAsync);
    }

    /// <summary>
    /// The data folder is the owner's alone (0700 when this creates it) and so is the database (0600). The file is
    /// created here, before SQLite opens it, because SQLite gives its <c>-wal</c> and <c>-shm</c> files the database
    /// file's mode; an existing database is tightened to 0600 as well.
    /// </summary>
    private static void Protect(string path)
    {
        var folder = Path.GetDirectoryName(path)!;
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
            return;
        }
        if (!Directory.Exists(folder)) Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        const UnixFileMode ownerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        if (!File.Exists(path))
        {
            try
            {
                new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = ownerOnly }).Dispose();
            }
            catch (IOException) when (File.Exists(path))
            {
                // another process created it first: tightened below like any existing database
            }
        }
        foreach (var file in new[] { path, path + "-wal", path + "-shm" })
            if (File.Exists(file) && File.GetUnixFileMode(file) != ownerOnly) File.SetUnixFileMode(file, ownerOnly);
    }

    public override string Provider => "sqlite";

    public override bool SupportsCluster => false;

    public override string SkipLocked => "";

    public override string Describe() => _path;

    public override string InList(string column, string parameter) => $"{column} IN (SELECT value FROM json_each({parameter}))";

    public override object ListValue(IReadOnlyCollection<string> values)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var json = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            json.WriteStartArray();
            foreach (var value in values) json.WriteStringValue(value);
            json.WriteEndArray();
        }
        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    /// <summary>
    /// A connection for reading (in WAL mode readers never wait for the writer): an idle one from this database's own pool,
    /// with the statements it prepared before, or a new one. Disposing it gives it back.
    /// </summary>
    public override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        while (_readers.TryPop(out var idle))
        {
            Interlocked.Decrement(ref _idleReaders);
            if (idle.State == System.Data.ConnectionState.Open)
            {
                idle.Rented();
                return idle;
            }
            idle.Retire();
        }
        var connection = new PreparingSqliteConnection(_connectionString, Recycle);
        await connection.OpenAsync(cancellationToken);
        return connection;
    }

    private bool Recycle(PreparingSqliteConnection reader)
    {
        if (_disposed) return false;
        if (Interlocked.Increment(ref _idleReaders) > IdleReaders)
        {
            Interlocked.Decrement(ref _idleReaders);
            return false;
        }
        _readers.Push(reader);
        // Given back while the database was being disposed: closed here, as the disposal may have emptied the pool already.
        if (_disposed) while (_readers.TryPop(out var idle)) idle.Retire();
        return true;
    }

    public override async Task<T> WriteBulkAsync<T>(Func<DbConnection, DbTransaction?, Task<T>> work, CancellationToken cancellationToken)
    {
        await _bulkLock.WaitAsync(cancellationToken);
        try
        {
            return await WriteAsync(work, cancellationToken);
        }
        finally
        {
            _bulkLock.Release();
        }
    }

    /// <summary>
    /// Writes go through one long-lived connection, and the writes that queued while one transaction ran share the next
    /// (a group commit, up to <see cref="MaxGroup"/>): SQLite has a single writer anyway, and a commit writes every page its
    /// transaction touched to the WAL, so the pages that concurrent writes share (a table's last leaf, the index pages, the
    /// thread rows) are written once per group, not once per write. Each write runs inside a savepoint of its own: one that
    /// fails is rolled back alone and only its caller sees the error. A write's caller hears back once the group is committed.
    /// </summary>
    /// <remarks>
    /// Where a failure ends the whole transaction (SQLite rolls it back itself on a full disk, an I/O error, an interrupt), or
    /// the commit fails, each write of the group is run again in a transaction of its own, as PostgreSQL's retries do: a
    /// write's work is idempotent up to its commit. A write whose caller gave up before its turn is not run.
    /// </remarks>
    public override async Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction?, Task<T>> work, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var write = new PendingWrite<T>(work, cancellationToken);
        if (!_writes.Writer.TryWrite(write)) throw new ObjectDisposedException(nameof(SqliteDatabase));
        return await write.Completion.Task;
    }

    /// <summary>How many writes one transaction takes at most; the event log's own batches are one write each.</summary>
    private const int MaxGroup = 64;

    private readonly Channel<PendingWrite> _writes = Channel.CreateUnbounded<PendingWrite>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _writing;

    private async Task WriteLoopAsync()
    {
        var group = new List<PendingWrite>(MaxGroup);
        while (await _writes.Reader.WaitToReadAsync(CancellationToken.None))
        {
            group.Clear();
            while (group.Count < MaxGroup && _writes.Reader.TryRead(out var write))
            {
                if (write.CancellationToken.IsCancellationRequested) write.Cancel();
                else group.Add(write);
            }
            if (group.Count == 1) await WriteAloneAsync(group[0]);
            else if (group.Count > 1) await WriteGroupAsync(group);
        }
    }

    /// <summary>One write in a transaction of its own.</summary>
    private async Task WriteAloneAsync(PendingWrite write)
    {
        try
        {
            var connection = _writer ??= await OpenWriterAsync(write.CancellationToken);
            // The transaction is begun and ended with statements the connection keeps prepared: SqliteTransaction leaves a
            // finalizable statement behind per transaction, which at thousands of writes a second kept the finalizer thread busy.
            await connection.ExecuteAsync("BEGIN IMMEDIATE", null, write.CancellationToken);
            try
            {
                await write.RunAsync(connection);
                await connection.ExecuteAsync("COMMIT", null, write.CancellationToken);
            }
            catch
            {
                await RollbackAsync(connection);
                throw;
            }
            write.Complete();
        }
        catch (Exception ex)
        {
            write.Fail(ex);
        }
        await ReplaceIfBrokenAsync();
    }

    /// <summary>Several writes in one transaction, each in a savepoint; see <see cref="WriteAsync{T}"/>.</summary>
    private async Task WriteGroupAsync(List<PendingWrite> group)
    {
        var ran = new List<PendingWrite>(group.Count);
        var again = false;
        PreparingSqliteConnection? connection = null;
        try
        {
            connection = _writer ??= await OpenWriterAsync(CancellationToken.None);
            await connection.ExecuteAsync("BEGIN IMMEDIATE", null, CancellationToken.None);
            foreach (var write in group)
            {
                if (write.CancellationToken.IsCancellationRequested)
                {
                    write.Cancel();
                    continue;
                }
                await connection.ExecuteAsync("SAVEPOINT apex_write", null, CancellationToken.None);
                try
                {
                    await write.RunAsync(connection);
                    await connection.ExecuteAsync("RELEASE apex_write", null, CancellationToken.None);
                    ran.Add(write);
                }
                catch (Exception ex) when (InTransaction(connection))
                {
                    await connection.ExecuteAsync("ROLLBACK TO apex_write", null, CancellationToken.None);
                    await connection.ExecuteAsync("RELEASE apex_write", null, CancellationToken.None);
                    write.Fail(ex);
                }
            }
            await connection.ExecuteAsync("COMMIT", null, CancellationToken.None);
        }
        catch (Exception)
        {
            // The transaction is gone (or never began): whatever ran in it is undone, so every write not yet answered runs alone.
            if (connection is not null) await RollbackAsync(connection);
            again = true;
        }
        if (!again)
        {
            foreach (var write in ran) write.Complete();
            return;
        }
        await ReplaceIfBrokenAsync();
        foreach (var write in group)
        {
            if (write.Answered) continue;
            if (write.CancellationToken.IsCancellationRequested) write.Cancel();
            else await WriteAloneAsync(write);
        }
    }

    private static bool InTransaction(PreparingSqliteConnection connection) =>
        connection.State == System.Data.ConnectionState.Open && SQLitePCL.raw.sqlite3_get_autocommit(connection.Handle) == 0;

    private static async Task RollbackAsync(PreparingSqliteConnection connection)
    {
        try
        {
            if (InTransaction(connection)) await connection.ExecuteAsync("ROLLBACK", null, CancellationToken.None);
        }
        catch (SqliteException)
        {
            // nothing to roll back: the failure ended the transaction
        }
    }

    /// <summary>A broken connection is replaced on the next write.</summary>
    private async Task ReplaceIfBrokenAsync()
    {
        if (_writer is { } writer && writer.State != System.Data.ConnectionState.Open) await DisposeWriterAsync();
    }

    /// <summary>A write waiting for the writer: its work, its caller's token, and how its caller hears back.</summary>
    private abstract class PendingWrite(CancellationToken cancellationToken)
    {
        public CancellationToken CancellationToken { get; } = cancellationToken;

        /// <summary>Its caller has its answer (a result, an error or the cancellation).</summary>
        public abstract bool Answered { get; }

        public abstract Task RunAsync(DbConnection connection);

        /// <summary>Its transaction committed: the caller gets the result.</summary>
        public abstract void Complete();

        public abstract void Fail(Exception exception);

        public abstract void Cancel();
    }

    private sealed class PendingWrite<T>(Func<DbConnection, DbTransaction?, Task<T>> work, CancellationToken cancellationToken) : PendingWrite(cancellationToken)
    {
        private T? _result;

        public TaskCompletionSource<T> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override bool Answered => Completion.Task.IsCompleted;

        public override async Task RunAsync(DbConnection connection) => _result = await work(connection, null);

        public override void Complete() => Completion.TrySetResult(_result!);

        public override void Fail(Exception exception)
        {
            if (exception is OperationCanceledException && CancellationToken.IsCancellationRequested) Completion.TrySetCanceled(CancellationToken);
            else Completion.TrySetException(exception);
        }

        public override void Cancel() => Completion.TrySetCanceled(CancellationToken);
    }

    private async Task DisposeWriterAsync()
    {
        if (_writer is not null) await _writer.DisposeAsync();
        _writer = null;
    }

    private async Task<PreparingSqliteConnection> OpenWriterAsync(CancellationToken cancellationToken)
    {
        var connection = new PreparingSqliteConnection(_connectionString, recycle: null);
        await connection.OpenAsync(cancellationToken);
        await using var pragma = connection.CreateCommand();
        // WAL lets readers run beside the writer; synchronous=NORMAL is durable across process crashes in WAL mode
        // (only a power loss can drop the last commits). The WAL is copied back into the database every 4,000 pages (16 MB)
        // instead of SQLite's 1,000: a quarter of the checkpoints and their fsyncs (0.17 -> 0.04 a run under load), and hot
        // pages (thread rows, index roots) are copied back once per checkpoint, not once per thousand pages.
        pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=4000;";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    public override async ValueTask DisposeAsync()
    {
        _disposed = true;
        // The writes already queued are written; later ones are refused.
        _writes.Writer.TryComplete();
        await _writing;
        while (_readers.TryPop(out var idle)) idle.Retire();
        await DisposeWriterAsync();
        SqliteConnection.ClearAllPools();
        _bulkLock.Dispose();
    }
}
