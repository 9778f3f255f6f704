using System.Data.Common;

namespace Apex.Server.Storage;

/// <summary>
/// What the stores share: the database, column lists, row readers and query helpers. The SQL is shared by SQLite and
/// PostgreSQL; what differs (connections, write serialization, row locking) lives in <see cref="Database"/>.
/// </summary>
internal abstract class SqlStore(Database db)
{
    protected Database Db { get; } = db;

    public const string UserColumns = "id, email, normalized_email, password_hash, display_name, tier, created_at, failed_logins, lockout_until, role, token_budget, cost_budget";
    public const string ThreadColumns = "id, user_id, title, strategy, last_seq, created_at, updated_at";
    public const string MessageColumns = "id, thread_id, user_id, run_id, role, content, created_at";
    public const string RunColumns = "id, thread_id, user_id, status, strategy, message_id, created_at, started_at, ended_at, error, node_id, cancel_requested, agent_id, agent_version";
    public const string SessionColumns = "id, user_id, refresh_hash, created_at, expires_at, revoked_at";


    protected static Task<int> InsertMessageAsync(DbConnection c, DbTransaction? t, MessageRecord m, CancellationToken cancellationToken) =>
        c.ExecuteAsync($"INSERT INTO messages ({MessageColumns}) VALUES (@id, @t, @u, @r, @role, @content, @ca)", t, cancellationToken,
            ("@id", m.Id), ("@t", m.ThreadId), ("@u", m.UserId), ("@r", m.RunId), ("@role", m.Role), ("@content", m.Content), ("@ca", m.CreatedAt.ToUnixMs()));

    protected async Task<List<T>> ReadAsync<T>(string sql, Func<DbDataReader, T> map, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        await using var connection = await Db.OpenAsync(cancellationToken);
        return await connection.QueryAsync(sql, null, map, cancellationToken, parameters);
    }

    protected async Task<T?> ReadSingleAsync<T>(string sql, Func<DbDataReader, T> map, CancellationToken cancellationToken, params (string, object?)[] parameters) where T : class
    {
        await using var connection = await Db.OpenAsync(cancellationToken);
        return await connection.QuerySingleAsync(sql, null, map, cancellationToken, parameters);
    }

    public static UserRecord ReadUser(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.Time(6), r.GetInt32(7), r.TimeOrNull(8),
            r.GetString(9), r.IsDBNull(10) ? null : r.GetInt64(10), r.IsDBNull(11) ? null : r.GetDouble(11));

    public static SessionRecord ReadSession(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.Time(3), r.Time(4), r.TimeOrNull(5));

    public static ThreadRecord ReadThread(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt64(4), r.Time(5), r.Time(6));

    public static MessageRecord ReadMessage(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.StringOrNull(3), r.GetString(4), r.GetString(5), r.Time(6));

    public static RunRecord ReadRun(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetString(4), r.GetString(5), r.Time(6),
            r.TimeOrNull(7), r.TimeOrNull(8), r.StringOrNull(9), r.StringOrNull(10), r.GetInt64(11) != 0, null,
            r.StringOrNull(12), r.IsDBNull(13) ? null : r.GetInt32(13)) { Checkpoint = r.FieldCount > 14 ? r.StringOrNull(14) : null };
}
