using System.Data.Common;

namespace Apex.Server.Storage;

/// <summary>
/// A database the store runs on: how to open connections, how writes are serialized, and the
/// few SQL spellings that differ between providers. The store's SQL is otherwise shared.
/// </summary>
/// <remarks>
/// Global lock order for every write transaction, on every provider: run rows before thread rows, each table's rows by
/// ascending id (see <see cref="PostgresDatabase"/>, where row locks make it matter, and <see cref="EventAppender"/>).
/// </remarks>
internal abstract class Database : IAsyncDisposable
{
    public abstract string Provider { get; }

    /// <summary>Where the data lives, for the start-up log (no secrets).</summary>
    public abstract string Describe();

    /// <summary>Whether several nodes may share this database.</summary>
    public abstract bool SupportsCluster { get; }

    /// <summary><c>FOR UPDATE SKIP LOCKED</c> where the provider has it.</summary>
    public abstract string SkipLocked { get; }

    /// <summary>
    /// The locking clause that takes a selected row's write lock (<c>FOR NO KEY UPDATE</c>, optionally <c>SKIP LOCKED</c>) where
    /// rows have locks; empty where the database has a single writer. With <c>ORDER BY id</c> it takes the locks in id order.
    /// </summary>
    public virtual string LockRows(bool skipLocked) => "";

    /// <summary>The SQL for "<paramref name="column"/> is one of the list in <paramref name="parameter"/>" (a list bound with <see cref="ListValue"/>).</summary>
    public abstract string InList(string column, string parameter);

    /// <summary>A list of strings as one parameter value for <see cref="InList"/>.</summary>
    public abstract object ListValue(IReadOnlyCollection<string> values);

    public abstract ValueTask<DbConnection> OpenAsync(CancellationToken cancellationToken);

    /// <summary>Runs <paramref name="work"/> in one write transaction and commits it.</summary>
    /// <remarks>The transaction passed to <paramref name="work"/> is null where the provider runs it in SQL (SQLite): commands simply run inside it.</remarks>
    public abstract Task<T> WriteAsync<T>(Func<DbConnection, DbTransaction?, Task<T>> work, CancellationToken cancellationToken);

    /// <summary>
    /// A write that is one chunk of a long job (an upload's rows, a chunked delete). Where writes are serialized, at most
    /// one such chunk waits for the writer at a time, so other users' short writes wait behind one chunk, not several.
    /// </summary>
    public virtual Task<T> WriteBulkAsync<T>(Func<DbConnection, DbTransaction?, Task<T>> work, CancellationToken cancellationToken) => WriteAsync(work, cancellationToken);

    /// <summary>Tells the other nodes, on commit, that something changed; a no-op where there is only one node.</summary>
    public virtual Task NotifyAsync(DbConnection connection, DbTransaction? transaction, string channel, string payload, CancellationToken cancellationToken) =>
        Task.CompletedTask;

    /// <summary>
    /// Takes a write's notices to send after its commit (the cluster's <see cref="SignalBus"/> carries them), where the bus does so;
    /// false: the caller sends them inside the transaction (<c>NOTIFY</c>).
    /// </summary>
    public virtual bool TryDeferNotices(DbTransaction? transaction, IEnumerable<Notice> notices) => false;

    /// <summary>Serializes schema migrations between nodes starting together.</summary>
    public virtual Task LockMigrationsAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken) => Task.CompletedTask;

    public virtual bool IsUniqueViolation(Exception exception) => false;

    public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
