using Npgsql;

namespace Apex.Tests.Infrastructure;

/// <summary>
/// A fresh database on the test PostgreSQL cluster that scripts/test.sh starts (APEX_TEST_POSTGRES),
/// dropped afterwards. The PostgreSQL tests fail rather than skip when there is no cluster.
/// </summary>
public sealed class PostgresTestDatabase : IAsyncDisposable
{
    private readonly string _admin;
    private readonly string _name;

    private PostgresTestDatabase(string admin, string name, string connectionString)
    {
        _admin = admin;
        _name = name;
        ConnectionString = connectionString;
    }

    public string ConnectionString { get; }

    public static async Task<PostgresTestDatabase> CreateAsync()
    {
        var admin = Environment.GetEnvironmentVariable("APEX_TEST_POSTGRES")
            ?? throw new InvalidOperationException("APEX_TEST_POSTGRES is not set: run the tests with scripts/test.sh, which starts a PostgreSQL cluster for them.");
        var name = "apex_" + Guid.NewGuid().ToString("N");
        await using (var connection = new NpgsqlConnection(admin))
        {
            await connection.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await create.ExecuteNonQueryAsync();
        }
        return new PostgresTestDatabase(admin, name, new NpgsqlConnectionStringBuilder(admin) { Database = name, MaxPoolSize = 30 }.ConnectionString);
    }

    public Dictionary<string, string?> ServerSettings() => new()
    {
        ["Apex:Storage:Provider"] = "postgres",
        ["Apex:Storage:ConnectionString"] = ConnectionString,
    };

    public async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var connection = new NpgsqlConnection(_admin);
        await connection.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {_name} WITH (FORCE)", connection);
        await drop.ExecuteNonQueryAsync();
    }
}
