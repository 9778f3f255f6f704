using System.Collections.Concurrent;
using System.Data.Common;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Apex.Server.Storage;

/// <summary>
/// PostgreSQL, for several identical nodes on one database: writes run concurrently (row locks do
/// the ordering), runs are claimed with <c>FOR UPDATE SKIP LOCKED</c>, and <c>NOTIFY</c> (sent inside
/// the writing transaction, so it is delivered on commit) tells the other nodes what changed.
/// </summary>
/// <remarks>
/// The global lock order (every write path follows it, so that no two transactions can wait on each other in a cycle):
/// <b>runs before threads</b>, and within a table by ascending id. A transaction that writes both takes its run rows
/// first (<c>SELECT … ORDER BY id FOR NO KEY UPDATE</c>), then its thread rows the same way. Lease renewal only ever
/// touches run rows and skips a locked one (<c>SKIP LOCKED</c>), so it never waits at all. Deleting a thread must lock
/// the thread's runs first, then delete the thread. Deadlocks and serialization failures that remain possible
/// (a path added without the order, an index page) are retried here with jitter, a bounded number of times.
/// </remarks>
internal sealed partial class PostgresDatabase : Database
{
    private const int MaxAttempts = 6;
    private readonly NpgsqlDataSource _source;
    private readonly NpgsqlDataSource _listenerSource;
    private readonly string _description;
    private readonly ILogger _logger;
    private readonly SignalBus _bus;
    // The notices of each open write transaction whose bus sends them after commit (keyed by the transaction).
    private readonly ConcurrentDictionary<DbTransaction, List<Notice>> _outboxes = new();

    public PostgresDatabase(string connectionString, ILogger<PostgresDatabase>? logger = null, SignalBus? bus = null)
    {
        _bus = bus ?? new NotifySignalBus();
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        _description = $"postgres://{builder.Host}:{builder.Port}/{builder.Database}";
        _logger = logger ?? NullLogger<PostgresDatabase>.Instance;
        // The listener's connection lives for the node's lifetime and holds LISTENs: it must never go back to the pool.
        _listenerSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(builder.ConnectionString) { Pooling = false });
        // The server's statements are a small fixed set: prepared on the server after two uses, a statement is parsed and
        // planned once per connection instead of per execution. Nothing here leaves session state on a connection, so the
        // DISCARD ALL that a pooled connection otherwise sends on every reuse (one per connection open) is not needed.
        if (builder.MaxAutoPrepare == 0) builder.MaxAutoPrepare = 128;
        if (builder.AutoPrepareMinUsages == 5) builder.AutoPrepareMinUsages = 2;
        builder.NoResetOnClose = true;
        _source = NpgsqlDataSource.Create(builder);
    }

    public override string Provider => "postgres";

    public override bool SupportsCluster => true;

    public override string SkipLocked => "FOR UPDATE SKIP LOCKED";

    public override string LockRows(bool skipLocked) => skipLocked ? "FOR NO KEY UPDATE SKIP LOCKED" : "FOR NO KEY UPDATE";

    public string ConnectionString => _source.ConnectionString;

    public override string Describe() => _description;

    public override string InList(string column, string parameter) => $"{column} = ANY({parameter})";

    public override object ListValue(IReadOnlyCollection<string> values) => values as string[] ?? [.. values];

    public override async ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken) => await _source.OpenConnectionAsync(cancellationToken);

    public override async Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction?, Task<T>> work, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                // Decided once per attempt: a transaction's notices all go one way (NOTIFY inside it, or the bus after commit).
                var outbox = _bus.NotifiesInTransaction ? null : new List<Notice>();
                T result;
                await using (var connection = await _source.OpenConnectionAsync(cancellationToken))
                await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
                {
                    if (outbox is not null) _outboxes[transaction] = outbox;
                    try
                    {
                        result = await work(connection, transaction);
                        await transaction.CommitAsync(cancellationToken);
                    }
                    finally
                    {
                        if (outbox is not null) _outboxes.TryRemove(transaction, out _);
                    }
                }
                // Committed: now the other nodes may look. Not cancellable: the rows are in, their wake-ups must go out.
                if (outbox is { Count: > 0 } && !await _bus.PublishAsync(outbox, CancellationToken.None)) await NotifyNowAsync(outbox, CancellationToken.None);
                return result;
            }
            // A deadlock or serialization failure is the database asking us to try again; the work is idempotent up to commit.
            // The wait is jittered and grows, so that the transactions that collided do not collide again in step.
            catch (PostgresException ex) when (ex.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure && attempt < MaxAttempts)
            {
                var delay = TimeSpan.FromMilliseconds(Random.Shared.Next(1, 10 << attempt));
                LogRetrying(_logger, ex.SqlState, attempt, delay.TotalMilliseconds);
                await Task.Delay(delay, cancellationToken);
            }
        }
    }

    public override async Task NotifyAsync(DbConnection connection, DbTransaction? transaction, string channel, string payload, CancellationToken cancellationToken)
    {
        if (TryDeferNotices(transaction, [new Notice(channel, payload)])) return;
        await connection.ExecuteAsync("SELECT pg_notify(@c, @p)", transaction, cancellationToken, ("@c", channel), ("@p", payload));
    }

    public override bool TryDeferNotices(DbTransaction? transaction, IEnumerable<Notice> notices)
    {
        if (transaction is null || !_outboxes.TryGetValue(transaction, out var outbox)) return false;
        outbox.AddRange(notices);
        return true;
    }

    /// <summary><c>NOTIFY</c> outside any write: a committed write's notices that the bus could not send, or a node's own announcement.</summary>
    public async Task NotifyNowAsync(IReadOnlyList<Notice> notices, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await _source.OpenConnectionAsync(cancellationToken);
            await using var command = new NpgsqlCommand("SELECT pg_notify(n.c, n.p) FROM unnest($1::text[], $2::text[]) AS n(c, p)", connection);
            command.Parameters.Add(new NpgsqlParameter { Value = notices.Select(n => n.Channel).ToArray() });
            command.Parameters.Add(new NpgsqlParameter { Value = notices.Select(n => n.Payload).ToArray() });
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is NpgsqlException or InvalidOperationException)
        {
            // The write itself committed: its wake-ups are lost to other nodes, whose listeners resync when they reconnect.
            LogNotifyFailed(_logger, ex, notices.Count);
        }
    }

    public override async Task LockMigrationsAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken) =>
        await connection.ExecuteAsync("SELECT pg_advisory_xact_lock(7447510)", transaction, cancellationToken);

    public override bool IsUniqueViolation(Exception exception) => exception is PostgresException { SqlState: PostgresErrorCodes.UniqueViolation };

    public NpgsqlConnection CreateListenerConnection() => _listenerSource.CreateConnection();

    public override async ValueTask DisposeAsync()
    {
        await _source.DisposeAsync();
        await _listenerSource.DisposeAsync();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Sending {Count} notices as NOTIFY after commit failed")]
    private static partial void LogNotifyFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A write transaction failed with {SqlState} (attempt {Attempt}); retrying in {DelayMs} ms")]
    private static partial void LogRetrying(ILogger logger, string sqlState, int attempt, double delayMs);
}
