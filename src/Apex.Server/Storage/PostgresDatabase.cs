using System.Data.Common;
using Npgsql;

namespace Apex.Server.Storage;

/// <summary>
/// PostgreSQL, for several identical nodes on one database: writes run concurrently (row locks do
/// the ordering), runs are claimed with <c>FOR UPDATE SKIP LOCKED</c>, and <c>NOTIFY</c> (sent inside
/// the writing transaction, so it is delivered on commit) tells the other nodes what changed.
/// </summary>
internal sealed class PostgresDatabase : Database
{
    private readonly NpgsqlDataSource _source;
    private readonly string _description;

    public PostgresDatabase(string connectionString)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        _description = $"postgres://{builder.Host}:{builder.Port}/{builder.Database}";
        _source = NpgsqlDataSource.Create(builder);
    }

    public override string Provider => "postgres";

    public override bool SupportsCluster => true;

    public override string SkipLocked => "FOR UPDATE SKIP LOCKED";

    public string ConnectionString => _source.ConnectionString;

    public override string Describe() => _description;

    public override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken) => await _source.OpenConnectionAsync(cancellationToken);

    public override async Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction?, Task<T>> work, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            await using var connection = await _source.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            try
            {
                var result = await work(connection, transaction);
                await transaction.CommitAsync(cancellationToken);
                return result;
            }
            // A deadlock or serialization failure is the database asking us to try again; the work is idempotent up to commit.
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure && attempt < 5)
            {
            }
        }
    }

    public override async Task NotifyAsync(DbConnection connection, DbTransaction? transaction, string channel, string payload, CancellationToken cancellationToken) =>
        await connection.ExecuteAsync("SELECT pg_notify(@c, @p)", transaction, cancellationToken, ("@c", channel), ("@p", payload));

    public override async Task LockMigrationsAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken) =>
        await connection.ExecuteAsync("SELECT pg_advisory_xact_lock(7447510)", transaction, cancellationToken);

    public override bool IsUniqueViolation(Exception exception) => exception is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation };

    public NpgsqlConnection CreateListenerConnection() => _source.CreateConnection();

    public override async ValueTask DisposeAsync() => await _source.DisposeAsync();
}
