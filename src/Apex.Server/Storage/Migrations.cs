using System.Collections.Immutable;
using System.Data.Common;

namespace Apex.Server.Storage;

/// <summary>
/// Versioned schema migrations, applied in order at start-up inside one transaction each. The SQL
/// is the common subset of SQLite and PostgreSQL (BIGINT unix-millisecond times, TEXT ids).
/// Never edit a shipped migration: add a new one.
/// </summary>
internal static class Migrations
{
    public static ImmutableArray<(int Version, string Name, string Sql)> All { get; } =
    [
        (1, "initial", """
            CREATE TABLE users (
                id TEXT PRIMARY KEY,
                email TEXT NOT NULL,
                normalized_email TEXT NOT NULL UNIQUE,
                password_hash TEXT NOT NULL,
                display_name TEXT NOT NULL,
                tier TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                failed_logins INTEGER NOT NULL DEFAULT 0,
                lockout_until BIGINT NULL);
            CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                refresh_hash TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                revoked_at BIGINT NULL);
            CREATE INDEX ix_sessions_user ON sessions(user_id);
            CREATE TABLE signing_keys (
                id TEXT PRIMARY KEY,
                secret TEXT NOT NULL,
                created_at BIGINT NOT NULL);
            CREATE TABLE ws_tickets (
                ticket_hash TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                session_id TEXT NOT NULL,
                expires_at BIGINT NOT NULL);
            CREATE TABLE threads (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                title TEXT NOT NULL,
                strategy TEXT NOT NULL,
                last_seq BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL);
            CREATE INDEX ix_threads_user ON threads(user_id, updated_at, id);
            CREATE TABLE messages (
                id TEXT PRIMARY KEY,
                thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                run_id TEXT NULL,
                role TEXT NOT NULL,
                content TEXT NOT NULL,
                created_at BIGINT NOT NULL);
            CREATE INDEX ix_messages_thread ON messages(thread_id, created_at, id);
            CREATE TABLE runs (
                id TEXT PRIMARY KEY,
                thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                status TEXT NOT NULL,
                strategy TEXT NOT NULL,
                message_id TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                started_at BIGINT NULL,
                ended_at BIGINT NULL,
                error TEXT NULL,
                node_id TEXT NULL,
                lease_until BIGINT NULL,
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                results TEXT NULL);
            CREATE INDEX ix_runs_thread ON runs(thread_id, created_at, id);
            CREATE INDEX ix_runs_status ON runs(status, created_at);
            CREATE INDEX ix_runs_user ON runs(user_id, status);
            CREATE UNIQUE INDEX ux_runs_one_running_per_thread ON runs(thread_id) WHERE status = 'running';
            CREATE TABLE events (
                thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
                seq BIGINT NOT NULL,
                user_id TEXT NOT NULL,
                run_id TEXT NULL,
                type TEXT NOT NULL,
                payload TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (thread_id, seq));
            CREATE INDEX ix_events_run ON events(run_id);
            CREATE TABLE tool_usage (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                run_id TEXT NOT NULL,
                tool TEXT NOT NULL,
                status TEXT NOT NULL,
                duration_ms DOUBLE PRECISION NOT NULL,
                created_at BIGINT NOT NULL);
            CREATE INDEX ix_tool_usage_user ON tool_usage(user_id, created_at);
            CREATE TABLE workload_calls (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                batch_id TEXT NOT NULL,
                ts BIGINT NOT NULL,
                provider TEXT NOT NULL,
                model TEXT NOT NULL,
                prompt_tokens BIGINT NOT NULL,
                completion_tokens BIGINT NOT NULL,
                latency_ms DOUBLE PRECISION NOT NULL,
                status TEXT NOT NULL,
                cost DOUBLE PRECISION NULL,
                prompt_hash TEXT NULL,
                feature TEXT NULL,
                team TEXT NULL);
            CREATE INDEX ix_workload_user_ts ON workload_calls(user_id, ts);
            """),
        (2, "runs by thread and status", "CREATE INDEX ix_runs_thread_status ON runs(thread_id, status, id)"),
        // Kept when a thread is deleted: tokens spent stay spent (budgets, billing); the rows hold no content.
        (3, "model usage", """
            CREATE TABLE model_usage (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                run_id TEXT NOT NULL,
                agent TEXT NOT NULL,
                model TEXT NOT NULL,
                calls INTEGER NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cached_tokens BIGINT NOT NULL,
                reasoning_tokens BIGINT NOT NULL,
                cost DOUBLE PRECISION NULL,
                created_at BIGINT NOT NULL);
            CREATE INDEX ix_model_usage_user ON model_usage(user_id, created_at);
            """),
        // The refresh token a rotation replaced: presenting it again is reuse, which revokes the session.
        (4, "refresh token reuse", """
            ALTER TABLE sessions ADD COLUMN previous_hash TEXT NULL;
            CREATE INDEX ix_sessions_previous_hash ON sessions(previous_hash);
            """),
        // API keys (each with a session row of the same id) and the account's security events.
        (5, "api keys and security events", """
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                name TEXT NOT NULL,
                prefix TEXT NOT NULL,
                secret_hash TEXT NOT NULL UNIQUE,
                created_at BIGINT NOT NULL,
                expires_at BIGINT NULL,
                last_used_at BIGINT NULL);
            CREATE INDEX ix_api_keys_user ON api_keys(user_id, id);
            CREATE TABLE security_events (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                at BIGINT NOT NULL,
                address TEXT NULL,
                detail TEXT NULL);
            CREATE INDEX ix_security_events_user ON security_events(user_id, id);
            """),
        // Roles, per-user budget overrides, and who acted (an admin) on an audit entry.
        (6, "roles, budgets and audit actors", """
            ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user';
            ALTER TABLE users ADD COLUMN token_budget BIGINT NULL;
            ALTER TABLE users ADD COLUMN cost_budget DOUBLE PRECISION NULL;
            ALTER TABLE security_events ADD COLUMN actor_id TEXT NULL;
            CREATE INDEX ix_model_usage_created ON model_usage(created_at);
            """),
        // Uploads are written in chunks under a batch that readers see only once it is committed: an upload is still
        // all-or-nothing without holding the single SQLite writer for its whole length. The partial unique index is the
        // one-upload-at-a-time-per-user rule, on every node. The batches already stored are committed ones.
        (7, "workload batches", """
            CREATE TABLE workload_batches (
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                id TEXT NOT NULL,
                state TEXT NOT NULL,
                row_count BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                lease_until BIGINT NULL,
                PRIMARY KEY (user_id, id));
            CREATE UNIQUE INDEX ux_workload_batches_one_staging ON workload_batches(user_id) WHERE state = 'staging';
            INSERT INTO workload_batches (user_id, id, state, row_count, created_at, lease_until)
                SELECT user_id, batch_id, 'committed', COUNT(*), MIN(ts), NULL FROM workload_calls GROUP BY user_id, batch_id;
            CREATE INDEX ix_workload_user_batch ON workload_calls(user_id, batch_id);
            """),
        // Users' agent and team definitions, every version kept (a run names the one it used).
        (8, "agent and team definitions", """
            CREATE TABLE agents (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                shared INTEGER NOT NULL DEFAULT 0,
                version INTEGER NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                UNIQUE (user_id, name));
            CREATE INDEX ix_agents_shared ON agents(shared, name);
            CREATE TABLE agent_versions (
                agent_id TEXT NOT NULL,
                version INTEGER NOT NULL,
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                shared INTEGER NOT NULL DEFAULT 0,
                definition TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (agent_id, version));
            ALTER TABLE runs ADD COLUMN agent_id TEXT NULL;
            ALTER TABLE runs ADD COLUMN agent_version INTEGER NULL
            """),
        // Events as their columns and their data alone (the envelope is rebuilt on read): 16-byte ids, a type code, the time
        // in ticks; no user column (the thread's owner, checked through the thread row), no index by run (only recovery reads
        // a run's events, from its thread), no foreign key (a thread's events are deleted with it). Converts the rows in place.
        (9, "compact events", """
            CREATE TABLE events_v2 (
                thread_id BLOB NOT NULL,
                seq INTEGER NOT NULL,
                run_id BLOB NULL,
                event_id BLOB NOT NULL,
                type INTEGER NOT NULL,
                agent TEXT NULL,
                at INTEGER NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (thread_id, seq)) WITHOUT ROWID;
            INSERT INTO events_v2 (thread_id, seq, run_id, event_id, type, agent, at, data)
                SELECT CASE WHEN length(thread_id) = 36 AND thread_id = lower(thread_id) AND substr(thread_id, 9, 1) = '-' AND substr(thread_id, 14, 1) = '-' AND substr(thread_id, 19, 1) = '-' AND substr(thread_id, 24, 1) = '-' AND unhex(replace(thread_id, '-', '')) IS NOT NULL THEN unhex(replace(thread_id, '-', '')) ELSE unhex('00' || hex(thread_id)) END, seq,
                    CASE WHEN run_id IS NULL THEN NULL ELSE CASE WHEN length(run_id) = 36 AND run_id = lower(run_id) AND substr(run_id, 9, 1) = '-' AND substr(run_id, 14, 1) = '-' AND substr(run_id, 19, 1) = '-' AND substr(run_id, 24, 1) = '-' AND unhex(replace(run_id, '-', '')) IS NOT NULL THEN unhex(replace(run_id, '-', '')) ELSE unhex('00' || hex(run_id)) END END,
                    CASE WHEN length(eid) = 36 AND eid = lower(eid) AND substr(eid, 9, 1) = '-' AND substr(eid, 14, 1) = '-' AND substr(eid, 19, 1) = '-' AND substr(eid, 24, 1) = '-' AND unhex(replace(eid, '-', '')) IS NOT NULL THEN unhex(replace(eid, '-', '')) ELSE unhex('00' || hex(eid)) END,
                    CASE type WHEN 'run_queued' THEN 1 WHEN 'run_started' THEN 2 WHEN 'agent_started' THEN 3 WHEN 'agent_thinking' THEN 4 WHEN 'tool_executing' THEN 5 WHEN 'tool_completed' THEN 6 WHEN 'message_delta' THEN 7 WHEN 'agent_completed' THEN 8 WHEN 'agent_error' THEN 9 WHEN 'run_completed' THEN 10 WHEN 'run_failed' THEN 11 WHEN 'run_cancelled' THEN 12 END, agent, unixepoch(substr(ts, 1, 19) || substr(ts, -6)) * 10000000 + CASE WHEN substr(ts, 20, 1) = '.' THEN CAST(substr(substr(ts, 21, length(ts) - 26) || '000000', 1, 7) AS INTEGER) ELSE 0 END, data
                FROM (SELECT thread_id, seq, run_id, type, json_extract(payload, '$.event_id') AS eid, json_extract(payload, '$.agent_name') AS agent,
                    json_extract(payload, '$.timestamp') AS ts, json_extract(payload, '$.data') AS data FROM events);
            DROP TABLE events;
            ALTER TABLE events_v2 RENAME TO events
            """),
        // Nothing stored twice: a run's results are its agent_completed events' (read back from them), the usage rows need no
        // id of their own (they are only ever summed), runs by thread are served by ix_runs_thread_status, and a user's tool usage
        // (paged by id, summed by day) by its primary key (user_id, id), the one index the table needs. The claim takes the
        // oldest queued run from ix_runs_queued, which holds only queued runs, instead of walking the runs in id order. Event data
        // may now be bytes (compressed JSON); the column's declared type does not bind SQLite.
        (10, "derived run results, usage rows without ids", """
            ALTER TABLE runs DROP COLUMN results;
            DROP INDEX ix_runs_thread;
            CREATE INDEX ix_runs_queued ON runs(id) WHERE status = 'queued';
            CREATE TABLE model_usage_v2 (
                user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                run_id TEXT NOT NULL,
                agent TEXT NOT NULL,
                model TEXT NOT NULL,
                calls INTEGER NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cached_tokens BIGINT NOT NULL,
                reasoning_tokens BIGINT NOT NULL,
                cost DOUBLE PRECISION NULL,
                created_at BIGINT NOT NULL);
            INSERT INTO model_usage_v2 (user_id, run_id, agent, model, calls, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost, created_at)
                SELECT user_id, run_id, agent, model, calls, input_tokens, output_tokens, cached_tokens, reasoning_tokens, cost, created_at FROM model_usage ORDER BY created_at, id;
            DROP TABLE model_usage;
            ALTER TABLE model_usage_v2 RENAME TO model_usage;
            CREATE INDEX ix_model_usage_user ON model_usage(user_id, created_at);
            CREATE INDEX ix_model_usage_created ON model_usage(created_at);
            CREATE TABLE tool_usage_v2 (
                user_id TEXT NOT NULL,
                id TEXT NOT NULL,
                run_id TEXT NOT NULL,
                tool TEXT NOT NULL,
                status TEXT NOT NULL,
                duration_ms DOUBLE PRECISION NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (user_id, id)) WITHOUT ROWID;
            INSERT INTO tool_usage_v2 (user_id, id, run_id, tool, status, duration_ms, created_at)
                SELECT user_id, id, run_id, tool, status, duration_ms, created_at FROM tool_usage;
            DROP TABLE tool_usage;
            ALTER TABLE tool_usage_v2 RENAME TO tool_usage
            """),
        // Approval before a tool runs: one row per call that waited, owner-scoped, deleted with its run; the run's checkpoint
        // (what its agents had done when it began to wait) is what a worker resumes it from.
        (11, "tool approvals", """
            CREATE TABLE approvals (
                run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
                call_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                thread_id TEXT NOT NULL,
                agent TEXT NOT NULL,
                tool TEXT NOT NULL,
                arguments TEXT NOT NULL,
                status TEXT NOT NULL,
                edited_arguments TEXT NULL,
                reason TEXT NULL,
                decided_by TEXT NULL,
                requested_at BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                decided_at BIGINT NULL,
                PRIMARY KEY (run_id, call_id));
            CREATE INDEX ix_approvals_user ON approvals(user_id, run_id);
            CREATE INDEX ix_approvals_pending ON approvals(status, expires_at);
            ALTER TABLE runs ADD COLUMN checkpoint TEXT NULL
            """),
    ];

    /// <summary>The PostgreSQL text of a migration whose SQL is not the common subset.</summary>
    private static ImmutableDictionary<int, string> PostgresVariants { get; } = new Dictionary<int, string>
    {
        [9] = """
            CREATE TABLE events_v2 (
                thread_id BYTEA NOT NULL,
                seq BIGINT NOT NULL,
                run_id BYTEA NULL,
                event_id BYTEA NOT NULL,
                type SMALLINT NOT NULL,
                agent TEXT NULL,
                at BIGINT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (thread_id, seq));
            INSERT INTO events_v2 (thread_id, seq, run_id, event_id, type, agent, at, data)
                SELECT CASE WHEN thread_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN decode(replace(thread_id, '-', ''), 'hex') ELSE decode('00', 'hex') || convert_to(thread_id, 'UTF8') END, seq,
                    CASE WHEN run_id IS NULL THEN NULL ELSE CASE WHEN run_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN decode(replace(run_id, '-', ''), 'hex') ELSE decode('00', 'hex') || convert_to(run_id, 'UTF8') END END,
                    CASE WHEN eid ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN decode(replace(eid, '-', ''), 'hex') ELSE decode('00', 'hex') || convert_to(eid, 'UTF8') END,
                    CASE type WHEN 'run_queued' THEN 1 WHEN 'run_started' THEN 2 WHEN 'agent_started' THEN 3 WHEN 'agent_thinking' THEN 4 WHEN 'tool_executing' THEN 5 WHEN 'tool_completed' THEN 6 WHEN 'message_delta' THEN 7 WHEN 'agent_completed' THEN 8 WHEN 'agent_error' THEN 9 WHEN 'run_completed' THEN 10 WHEN 'run_failed' THEN 11 WHEN 'run_cancelled' THEN 12 END, agent, extract(epoch from (substr(ts, 1, 19) || right(ts, 6))::timestamptz)::bigint * 10000000 + CASE WHEN substr(ts, 20, 1) = '.' THEN rpad(substr(ts, 21, length(ts) - 26), 7, '0')::bigint ELSE 0 END, data
                FROM (SELECT thread_id, seq, run_id, type, p->>'event_id' AS eid, p->>'agent_name' AS agent, p->>'timestamp' AS ts, (p->'data')::text AS data
                    FROM (SELECT thread_id, seq, run_id, type, payload::json AS p FROM events) raw) e;
            DROP TABLE events;
            ALTER TABLE events_v2 RENAME TO events;
            ALTER INDEX events_v2_pkey RENAME TO events_pkey
            """,
        // PostgreSQL drops a column in place (its primary key with it); new rows take no space for it. Event data is bytes
        // (UTF-8 JSON, or compressed: see EventCodec); SQLite keeps the text of the rows it has and takes bytes beside them.
        [10] = """
            ALTER TABLE events ALTER COLUMN data TYPE BYTEA USING convert_to(data, 'UTF8');
            ALTER TABLE runs DROP COLUMN results;
            DROP INDEX ix_runs_thread;
            CREATE INDEX ix_runs_queued ON runs(id) WHERE status = 'queued';
            ALTER TABLE model_usage DROP COLUMN id;
            ALTER TABLE tool_usage DROP CONSTRAINT tool_usage_pkey;
            ALTER TABLE tool_usage ADD PRIMARY KEY (user_id, id);
            DROP INDEX ix_tool_usage_user
            """,
    }.ToImmutableDictionary();

    public static int Latest => All[^1].Version;

    public static Task<int> ApplyAsync(Database database, TimeProvider time, CancellationToken cancellationToken) => ApplyAsync(database, time, Latest, cancellationToken);

    /// <summary>Applies the migrations not applied yet, up to <paramref name="upTo"/> (a test builds an older schema with it).</summary>
    public static async Task<int> ApplyAsync(Database database, TimeProvider time, int upTo, CancellationToken cancellationToken)
    {
        await database.WriteAsync(async (connection, transaction) =>
            await connection.ExecuteAsync("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)", transaction, cancellationToken), cancellationToken);
        var applied = 0;
        foreach (var (version, name, common) in All.Where(m => m.Version <= upTo))
        {
            var sql = database is PostgresDatabase && PostgresVariants.TryGetValue(version, out var postgres) ? postgres : common;
            var done = await database.WriteAsync(async (connection, transaction) =>
            {
                await database.LockMigrationsAsync(connection, transaction, cancellationToken);
                // Taken inside the write transaction so that two nodes starting together apply each migration once.
                var current = await CurrentVersionAsync(connection, transaction, cancellationToken);
                if (current >= version) return false;
                foreach (var statement in sql.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                    await connection.ExecuteAsync(statement, transaction, cancellationToken);
                await connection.ExecuteAsync("INSERT INTO schema_version (version, name, applied_at) VALUES (@v, @n, @t)", transaction, cancellationToken,
                    ("@v", version), ("@n", name), ("@t", time.GetUtcNow().ToUnixMs()));
                return true;
            }, cancellationToken);
            if (done) applied++;
        }
        return applied;
    }

    /// <summary>Whether the database is reachable and its schema is the one this server needs (readiness).</summary>
    public static async Task<bool> IsCurrentAsync(Database database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await CurrentVersionAsync(connection, null, cancellationToken) == Latest;
    }

    public static async Task<int> CurrentVersionAsync(DbConnection connection, DbTransaction? transaction, CancellationToken cancellationToken) =>
        (int)(await connection.ScalarAsync("SELECT MAX(version) FROM schema_version", transaction, cancellationToken) ?? 0);
}
