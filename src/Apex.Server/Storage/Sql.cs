using System.Data.Common;

namespace Apex.Server.Storage;

/// <summary>Small ADO.NET helpers: parameters by name, rows mapped by a delegate.</summary>
internal static class Sql
{
    public static DbCommand Command(this DbConnection connection, string sql, DbTransaction? transaction, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters) command.Parameters.Add(Parameter(command.CreateParameter(), name, value));
        return command;
    }

    /// <summary>
    /// A command for one of the hottest statements, with its parameters declared (the caller sets their values). Where the
    /// connection keeps statements prepared (<see cref="IPreparedStatements"/>), it is reused for the life of the connection;
    /// give it back with <see cref="ReturnCommandAsync"/>.
    /// </summary>
    public static DbCommand RentCommand(this DbConnection connection, DbTransaction? transaction, string sql, params string[] parameters)
    {
        var command = Take(connection, transaction, sql);
        if (HasParameters(command, parameters.Length, i => parameters[i])) return command;
        command.Parameters.Clear();
        foreach (var name in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            command.Parameters.Add(parameter);
        }
        return command;
    }

    /// <summary>A command for one of the helpers below, with these parameter values: rented as <see cref="RentCommand"/> is.</summary>
    private static DbCommand Rent(DbConnection connection, string sql, DbTransaction? transaction, (string Name, object? Value)[] parameters)
    {
        var command = Take(connection, transaction, sql);
        if (HasParameters(command, parameters.Length, i => parameters[i].Name))
        {
            for (var i = 0; i < parameters.Length; i++)
            {
                var parameter = command.Parameters[i];
                // A kept parameter must not keep the type an earlier call's null gave it.
                parameter.ResetDbType();
                Parameter(parameter, parameters[i].Name, parameters[i].Value);
            }
            return command;
        }
        command.Parameters.Clear();
        foreach (var (name, value) in parameters) command.Parameters.Add(Parameter(command.CreateParameter(), name, value));
        return command;
    }

    /// <summary>The connection's prepared command for <paramref name="sql"/> where it keeps them, else a new one.</summary>
    private static DbCommand Take(DbConnection connection, DbTransaction? transaction, string sql)
    {
        DbCommand command;
        if (connection is IPreparedStatements prepared) command = prepared.Rent(sql);
        else
        {
            command = connection.CreateCommand();
            command.CommandText = sql;
        }
        command.Transaction = transaction;
        return command;
    }

    /// <summary>Whether a (reused) command already declares exactly these parameters, in this order.</summary>
    private static bool HasParameters(DbCommand command, int count, Func<int, string> name)
    {
        if (command.Parameters.Count != count) return false;
        for (var i = 0; i < count; i++) if (command.Parameters[i].ParameterName != name(i)) return false;
        return true;
    }

    private static DbParameter Parameter(DbParameter parameter, string name, object? value)
    {
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        // PostgreSQL cannot infer the type of a bare null (as in "@after IS NULL"); every nullable parameter here is text.
        if (value is null) parameter.DbType = System.Data.DbType.String;
        return parameter;
    }

    public static ValueTask ReturnCommandAsync(this DbCommand command) =>
        command.Connection is IPreparedStatements prepared ? prepared.Return(command) : command.DisposeAsync();

    public static async Task<int> ExecuteAsync(this DbConnection connection, string sql, DbTransaction? transaction, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        var command = Rent(connection, sql, transaction, parameters);
        try
        {
            return await command.ExecuteNonQueryAsync(cancellationToken);
        }
        finally
        {
            await command.ReturnCommandAsync();
        }
    }

    public static async Task<List<T>> QueryAsync<T>(this DbConnection connection, string sql, DbTransaction? transaction, Func<DbDataReader, T> map, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        var command = Rent(connection, sql, transaction, parameters);
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            var rows = new List<T>();
            while (await reader.ReadAsync(cancellationToken)) rows.Add(map(reader));
            return rows;
        }
        finally
        {
            await command.ReturnCommandAsync();
        }
    }

    public static async Task<T?> QuerySingleAsync<T>(this DbConnection connection, string sql, DbTransaction? transaction, Func<DbDataReader, T> map, CancellationToken cancellationToken, params (string, object?)[] parameters)
        where T : class
    {
        var command = Rent(connection, sql, transaction, parameters);
        try
        {
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            return await reader.ReadAsync(cancellationToken) ? map(reader) : null;
        }
        finally
        {
            await command.ReturnCommandAsync();
        }
    }

    public static async Task<long?> ScalarAsync(this DbConnection connection, string sql, DbTransaction? transaction, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        var command = Rent(connection, sql, transaction, parameters);
        try
        {
            var value = await command.ExecuteScalarAsync(cancellationToken);
            return value is null or DBNull ? null : Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
        }
        finally
        {
            await command.ReturnCommandAsync();
        }
    }

    public static long ToUnixMs(this DateTimeOffset value) => value.ToUnixTimeMilliseconds();

    public static long? ToUnixMs(this DateTimeOffset? value) => value?.ToUnixTimeMilliseconds();

    public static DateTimeOffset Time(this DbDataReader reader, int ordinal) => DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(ordinal));

    public static DateTimeOffset? TimeOrNull(this DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.Time(ordinal);

    public static string? StringOrNull(this DbDataReader reader, int ordinal) => reader.IsDBNull(ordinal) ? null : reader.GetString(ordinal);
}
