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

    public SqliteDatabase(string? configured)
    {
        var value = string.IsNullOrWhiteSpace(configured) ? Path.Combine("data", "apex.db") : configured;
        var builder = value.Contains('=') ? new SqliteConnectionStringBuilder(value) : new SqliteConnectionStringBuilder { DataSource = value };
        builder.Pooling = true;
        builder.DefaultTimeout = 30;
        _path = Path.GetFullPath(builder.DataSource);
        builder.DataSource = _path;
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        _connectionString = builder.ToString();
    }

    public override string Provider => "sqlite";

    public override bool SupportsCluster => false;

    public override string SkipLocked => "";

    public override string Describe() => _path;

    public override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken);
        await using var pragma = connection.CreateCommand();
        // synchronous=NORMAL is durable in WAL mode across process crashes (only a power loss can drop the last commits).
        pragma.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;";
        await pragma.ExecuteNonQueryAsync(cancellationToken);
        return connection;
    }

    public override async Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction, Task<T>> work, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            await using var connection = await OpenAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var result = await work(connection, transaction);
            await transaction.CommitAsync(cancellationToken);
            return result;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public override ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        _writeLock.Dispose();
        return ValueTask.CompletedTask;
    }
}
