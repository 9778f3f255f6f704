using System.Collections.Concurrent;
using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Apex.Server.Storage;

/// <summary>
/// The embedded default: one SQLite file in WAL mode. SQLite allows one writer at a time, so
/// writes queue on a semaphore here instead of spinning on SQLITE_BUSY inside the driver.
/// </summary>
internal sealed class SqliteDatabase : Database
{
    private readonly string _connectionString;
    private readonly string _path;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
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
    /// Writes go through one long-lived connection, one at a time: SQLite has a single writer anyway,
    /// and this saves opening and configuring a connection per transaction.
    /// </summary>
    public override async Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction?, Task<T>> work, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var connection = _writer ??= await OpenWriterAsync(cancellationToken);
            // The transaction is begun and ended with statements the connection keeps prepared: SqliteTransaction leaves a
            // finalizable statement behind per transaction, which at thousands of writes a second kept the finalizer thread busy.
            await connection.ExecuteAsync("BEGIN IMMEDIATE", null, cancellationToken);
            try
            {
                var result = await work(connection, null);
                await connection.ExecuteAsync("COMMIT", null, cancellationToken);
                return result;
            }
            catch
            {
                try { await connection.ExecuteAsync("ROLLBACK", null, CancellationToken.None); }
                catch (SqliteException) { /* nothing to roll back: the failure ended the transaction */ }
                throw;
            }
        }
        catch (SqliteException)
        {
            // A broken connection is replaced on the next write.
            if (_writer is { } broken && broken.State != System.Data.ConnectionState.Open)
            {
                await DisposeWriterAsync();
            }
            throw;
        }
        finally
        {
            _writeLock.Release();
        }
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
        while (_readers.TryPop(out var idle)) idle.Retire();
        await DisposeWriterAsync();
        SqliteConnection.ClearAllPools();
        _writeLock.Dispose();
        _bulkLock.Dispose();
    }
}
