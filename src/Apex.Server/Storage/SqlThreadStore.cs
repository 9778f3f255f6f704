
namespace Apex.Server.Storage;

/// <summary>Threads and their messages.</summary>
internal sealed class SqlThreadStore(Database db) : SqlStore(db), IThreadStore
{

    public Task<bool> CreateThreadAsync(ThreadRecord thread, int maxThreadsPerUser, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            // The user's row lock makes the count exact under parallel creates (SQLite has one writer already). It is a
            // row lock of its own kind, taken alone, so it joins no lock order.
            if (Db.LockRows(skipLocked: false) is { Length: > 0 } lockRows)
                await c.ExecuteAsync($"SELECT id FROM users WHERE id = @u {lockRows}", t, cancellationToken, ("@u", thread.UserId));
            return await c.ExecuteAsync($"""
                INSERT INTO threads ({ThreadColumns}) SELECT @id, @u, @title, @s, 0, @ca, @ua
                WHERE (SELECT COUNT(*) FROM threads WHERE user_id = @u) < @max
                """, t, cancellationToken, ("@id", thread.Id), ("@u", thread.UserId), ("@title", thread.Title), ("@s", thread.Strategy),
                ("@ca", thread.CreatedAt.ToUnixMs()), ("@ua", thread.UpdatedAt.ToUnixMs()), ("@max", maxThreadsPerUser)) == 1;
        }, cancellationToken);

    public Task<ThreadRecord?> GetThreadAsync(string userId, string threadId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {ThreadColumns} FROM threads WHERE id = @id AND user_id = @u", ReadThread, cancellationToken, ("@id", threadId), ("@u", userId));

    public async Task<IReadOnlyList<ThreadRecord>> ListThreadsAsync(string userId, int limit, string? afterId, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {ThreadColumns} FROM threads WHERE user_id = @u AND (@after IS NULL OR id < @after) ORDER BY id DESC LIMIT @limit",
            ReadThread, cancellationToken, ("@u", userId), ("@after", afterId), ("@limit", limit));

    public Task<ThreadRecord?> UpdateThreadAsync(string userId, string threadId, string? title, string? strategy, DateTimeOffset now, CancellationToken cancellationToken) =>
        Db.WriteAsync((c, t) => c.QuerySingleAsync(
            $"UPDATE threads SET title = COALESCE(@title, title), strategy = COALESCE(@s, strategy), updated_at = @now WHERE id = @id AND user_id = @u RETURNING {ThreadColumns}",
            t, ReadThread, cancellationToken, ("@title", title), ("@s", strategy), ("@now", now.ToUnixMs()), ("@id", threadId), ("@u", userId)), cancellationToken);

    /// <summary>Deletes the thread with its messages, runs, events and the tool usage rows of its runs, in one transaction.</summary>
    public Task<bool> DeleteThreadAsync(string userId, string threadId, CancellationToken cancellationToken) =>
        Db.WriteAsync(async (c, t) =>
        {
            // Rows are locked in the one global order, runs before threads: the cascade below would otherwise lock the
            // thread row first and then the runs that a batch of events (which ends runs, then numbers threads) holds.
            if (Db.SupportsCluster)
                await c.ExecuteAsync("SELECT id FROM runs WHERE thread_id = @id AND user_id = @u ORDER BY id FOR UPDATE", t, cancellationToken, ("@id", threadId), ("@u", userId));
            await c.ExecuteAsync("DELETE FROM tool_usage WHERE user_id = @u AND run_id IN (SELECT id FROM runs WHERE thread_id = @id AND user_id = @u)", t, cancellationToken,
                ("@id", threadId), ("@u", userId));
            // Events have no foreign key to cascade from (see EventCodec): they go first, from this user's thread only.
            await c.ExecuteAsync("DELETE FROM events WHERE thread_id = @tk AND EXISTS (SELECT 1 FROM threads WHERE id = @id AND user_id = @u)", t, cancellationToken,
                ("@tk", EventCodec.Id(threadId)), ("@id", threadId), ("@u", userId));
            return await c.ExecuteAsync("DELETE FROM threads WHERE id = @id AND user_id = @u", t, cancellationToken, ("@id", threadId), ("@u", userId)) == 1;
        }, cancellationToken);

    public async Task<IReadOnlyList<MessageRecord>> ListMessagesAsync(string userId, string threadId, int limit, string? afterId, CancellationToken cancellationToken) =>
        await ReadAsync($"SELECT {MessageColumns} FROM messages WHERE thread_id = @t AND user_id = @u AND (@after IS NULL OR id > @after) ORDER BY id LIMIT @limit",
            ReadMessage, cancellationToken, ("@t", threadId), ("@u", userId), ("@after", afterId), ("@limit", limit));

    public Task<MessageRecord?> GetMessageAsync(string userId, string messageId, CancellationToken cancellationToken) =>
        ReadSingleAsync($"SELECT {MessageColumns} FROM messages WHERE id = @id AND user_id = @u", ReadMessage, cancellationToken, ("@id", messageId), ("@u", userId));

    public async Task<IReadOnlyList<MessageRecord>> HistoryForAsync(string userId, string threadId, string messageId, int count, CancellationToken cancellationToken)
    {
        var newestFirst = await ReadAsync($"""
            SELECT {MessageColumns} FROM messages
            WHERE thread_id = @t AND user_id = @u AND id <> @m AND (role <> 'user' OR id < @m)
            ORDER BY id DESC LIMIT @limit
            """, ReadMessage, cancellationToken, ("@t", threadId), ("@u", userId), ("@m", messageId), ("@limit", count));
        newestFirst.Reverse();
        return newestFirst;
    }

    public async Task<IReadOnlyList<MessageRecord>> RecentMessagesAsync(string userId, string threadId, int count, CancellationToken cancellationToken)
    {
        var newestFirst = await ReadAsync($"SELECT {MessageColumns} FROM messages WHERE thread_id = @t AND user_id = @u ORDER BY id DESC LIMIT @limit",
            ReadMessage, cancellationToken, ("@t", threadId), ("@u", userId), ("@limit", count));
        newestFirst.Reverse();
        return newestFirst;
    }
}
