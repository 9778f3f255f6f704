using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Apex.Server.Storage;

/// <summary>A connection that keeps its statements prepared, by SQL text, for as long as it is open.</summary>
internal interface IPreparedStatements
{
    /// <summary>A command for <paramref name="sql"/>, prepared from an earlier use where there was one; give it back with <see cref="Return"/>.</summary>
    DbCommand Rent(string sql);

    ValueTask Return(DbCommand command);
}

/// <summary>
/// A SQLite connection that keeps each statement it ran compiled, by its SQL text. SQLite compiles a statement into a
/// program before it runs it, and Microsoft.Data.Sqlite keeps that program only per command object, so a store call that
/// made a new command compiled its SQL again (~20 statements a run: SQLite's parser and code generator were ~8% of the
/// server's CPU under load). Readers come back to <see cref="SqliteDatabase"/>'s pool when disposed, so their statements
/// outlive the store call that used them.
/// </summary>
/// <remarks>One user at a time, as every ADO.NET connection: the writer under the write lock, a reader while it is rented.</remarks>
internal sealed class PreparingSqliteConnection(string connectionString, Func<PreparingSqliteConnection, bool>? recycle) : SqliteConnection(connectionString), IPreparedStatements
{
    /// <summary>How many statements one connection keeps; the store's SQL is a fixed set, far fewer (a dynamic filter past it is compiled each time).</summary>
    private const int Capacity = 128;

    private readonly Dictionary<string, Entry> _statements = new(StringComparer.Ordinal);
    private Func<PreparingSqliteConnection, bool>? _recycle = recycle;

    /// <summary>Given back and not rented since: a second disposal by the same holder must not give it back twice.</summary>
    private bool _idle;

    /// <summary>Taken from the pool by a new holder.</summary>
    public void Rented() => _idle = false;

    public DbCommand Rent(string sql)
    {
        if (_statements.TryGetValue(sql, out var kept))
        {
            // The same statement again while the first is still reading (a nested query): a command of its own.
            if (kept.Busy) return Create(sql);
            kept.Busy = true;
            return kept.Command;
        }
        var command = Create(sql);
        if (_statements.Count < Capacity) _statements[sql] = new Entry(command) { Busy = true };
        return command;
    }

    public ValueTask Return(DbCommand command)
    {
        if (_statements.TryGetValue(command.CommandText, out var kept) && ReferenceEquals(kept.Command, command))
        {
            kept.Busy = false;
            return ValueTask.CompletedTask;
        }
        return command.DisposeAsync();
    }

    /// <summary>Closes it for good: its statements are finalized and it is not recycled.</summary>
    public void Retire()
    {
        _recycle = null;
        _idle = false;
        Dispose();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && _idle) return;
        // Disposing a rented reader gives it back, open, with its statements; one that is broken or still inside a transaction is closed.
        if (disposing && _recycle is { } recycle && State == System.Data.ConnectionState.Open && SQLitePCL.raw.sqlite3_get_autocommit(Handle) != 0
            && !AnyBusy())
        {
            _idle = true;
            if (recycle(this)) return;
            _idle = false;
        }
        if (disposing)
        {
            foreach (var kept in _statements.Values) kept.Command.Dispose();
            _statements.Clear();
        }
        base.Dispose(disposing);
    }

    private bool AnyBusy()
    {
        foreach (var kept in _statements.Values) if (kept.Busy) return true;
        return false;
    }

    private SqliteCommand Create(string sql)
    {
        var command = CreateCommand();
        command.CommandText = sql;
        return command;
    }

    private sealed class Entry(SqliteCommand command)
    {
        public SqliteCommand Command { get; } = command;

        public bool Busy { get; set; }
    }
}
