using System.Data.Common;

namespace Apex.Server.Storage;

/// <summary>
/// Users' agent and team definitions. The <c>agents</c> row is a definition's current state (its name, whether it is shared,
/// its latest version); every version's JSON is kept in <c>agent_versions</c>, so a queued run still finds the version it named
/// after an edit or a deletion.
/// </summary>
internal sealed class SqlAgentStore(Database db) : SqlStore(db), IAgentStore
{
    private const string Columns = "a.id, a.user_id, a.kind, a.name, a.version, a.shared, v.definition, a.created_at, a.updated_at";
    private const string Joined = "agents a JOIN agent_versions v ON v.agent_id = a.id AND v.version = a.version";

    public async Task<AgentWriteOutcome> CreateAsync(AgentRecord record, int maxPerUser, CancellationToken cancellationToken)
    {
        try
        {
            return await Db.WriteAsync(async (c, t) =>
            {
                if (await c.ScalarAsync("SELECT COUNT(*) FROM agents WHERE user_id = @u", t, cancellationToken, ("@u", record.UserId)) >= maxPerUser)
                    return AgentWriteOutcome.LimitReached;
                if (await NameTakenAsync(c, t, record.UserId, record.Name, null, cancellationToken)) return AgentWriteOutcome.NameTaken;
                await c.ExecuteAsync("""
                    INSERT INTO agents (id, user_id, kind, name, shared, version, created_at, updated_at) VALUES (@id, @u, @k, @n, @s, 1, @at, @at)
                    """, t, cancellationToken, ("@id", record.Id), ("@u", record.UserId), ("@k", record.Kind), ("@n", record.Name), ("@s", record.Shared ? 1 : 0),
                    ("@at", record.CreatedAt.ToUnixMs()));
                await InsertVersionAsync(c, t, record with { Version = 1 }, cancellationToken);
                return AgentWriteOutcome.Saved;
            }, cancellationToken);
        }
        catch (DbException ex) when (Db.IsUniqueViolation(ex))
        {
            return AgentWriteOutcome.NameTaken; // the same name, created at the same moment on another node
        }
    }

    public Task<AgentRecord?> GetAsync(string userId, string kind, string id, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {Columns} FROM {Joined} WHERE a.id = @id AND a.kind = @k AND (a.user_id = @u OR a.shared = 1)", Read, cancellationToken,
            ("@id", id), ("@k", kind), ("@u", userId));

    public Task<AgentRecord?> FindAsync(string userId, string idOrName, CancellationToken cancellationToken) =>
        // By id, else by name: the user's own first, then a shared one (the oldest, when two admins chose the same name).
        ReadSingleAsync($"""
            SELECT {Columns} FROM {Joined} WHERE (a.id = @x OR a.name = @x) AND (a.user_id = @u OR a.shared = 1)
            ORDER BY CASE WHEN a.id = @x THEN 0 WHEN a.user_id = @u THEN 1 ELSE 2 END, a.created_at, a.id LIMIT 1
            """, Read, cancellationToken, ("@x", idOrName), ("@u", userId));

    public Task<AgentRecord?> GetVersionAsync(string userId, string id, int version, CancellationToken cancellationToken) =>
        ReadSingleAsync("""
            SELECT agent_id, user_id, kind, name, version, shared, definition, created_at, created_at FROM agent_versions
            WHERE agent_id = @id AND version = @v AND (user_id = @u OR shared = 1)
            """, Read, cancellationToken, ("@id", id), ("@v", version), ("@u", userId));

    public async Task<IReadOnlyList<AgentRecord>> ListAsync(string userId, string kind, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {Columns} FROM {Joined} WHERE a.kind = @k AND (a.user_id = @u OR a.shared = 1) ORDER BY a.name, a.id", Read, cancellationToken,
            ("@k", kind), ("@u", userId));

    public async Task<(AgentWriteOutcome Outcome, AgentRecord? Saved)> UpdateAsync(string userId, bool isAdmin, string kind, string id, string name, bool shared, string definition,
        DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            return await Db.WriteAsync(async (c, t) =>
            {
                var current = await c.QuerySingleAsync($"SELECT {Columns} FROM {Joined} WHERE a.id = @id AND a.kind = @k AND (a.user_id = @u OR a.shared = 1) {Db.LockRows(skipLocked: false)}",
                    t, Read, cancellationToken, ("@id", id), ("@k", kind), ("@u", userId));
                if (current is null) return (AgentWriteOutcome.NotFound, (AgentRecord?)null);
                // A shared definition is changed only by an admin; only an admin publishes one.
                if ((current.Shared || shared) && !isAdmin) return (AgentWriteOutcome.Forbidden, null);
                if (name != current.Name && await NameTakenAsync(c, t, current.UserId, name, id, cancellationToken)) return (AgentWriteOutcome.NameTaken, null);
                var saved = current with { Name = name, Shared = shared, Version = current.Version + 1, Definition = definition, UpdatedAt = now };
                await c.ExecuteAsync("UPDATE agents SET name = @n, shared = @s, version = @v, updated_at = @at WHERE id = @id", t, cancellationToken,
                    ("@n", name), ("@s", shared ? 1 : 0), ("@v", saved.Version), ("@at", now.ToUnixMs()), ("@id", id));
                await InsertVersionAsync(c, t, saved with { CreatedAt = now }, cancellationToken);
                return (AgentWriteOutcome.Saved, (AgentRecord?)saved);
            }, cancellationToken);
        }
        catch (DbException ex) when (Db.IsUniqueViolation(ex))
        {
            return (AgentWriteOutcome.NameTaken, null);
        }
    }

    public Task<AgentWriteOutcome> DeleteAsync(string userId, bool isAdmin, string kind, string id, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            var shared = await c.ScalarAsync("SELECT shared FROM agents WHERE id = @id AND kind = @k AND (user_id = @u OR shared = 1)", t, cancellationToken,
                ("@id", id), ("@k", kind), ("@u", userId));
            if (shared is null) return AgentWriteOutcome.NotFound;
            if (shared != 0 && !isAdmin) return AgentWriteOutcome.Forbidden;
            // The versions stay: a run queued with one of them still runs it.
            await c.ExecuteAsync("DELETE FROM agents WHERE id = @id", t, cancellationToken, ("@id", id));
            return AgentWriteOutcome.Saved;
        }, cancellationToken);

    private static async Task<bool> NameTakenAsync(DbConnection c, DbTransaction? t, string ownerId, string name, string? exceptId, CancellationToken cancellationToken) =>
        await c.ScalarAsync("SELECT COUNT(*) FROM agents WHERE user_id = @u AND name = @n AND (@except IS NULL OR id <> @except)", t, cancellationToken,
            ("@u", ownerId), ("@n", name), ("@except", exceptId)) > 0;

    private static Task<int> InsertVersionAsync(DbConnection c, DbTransaction? t, AgentRecord r, CancellationToken cancellationToken) =>
        c.ExecuteAsync("""
            INSERT INTO agent_versions (agent_id, version, user_id, kind, name, shared, definition, created_at) VALUES (@id, @v, @u, @k, @n, @s, @d, @at)
            """, t, cancellationToken, ("@id", r.Id), ("@v", r.Version), ("@u", r.UserId), ("@k", r.Kind), ("@n", r.Name), ("@s", r.Shared ? 1 : 0),
            ("@d", r.Definition), ("@at", r.CreatedAt.ToUnixMs()));

    private static AgentRecord Read(DbDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.GetInt32(4), r.GetInt32(5) != 0, r.GetString(6), r.Time(7), r.Time(8));
}
