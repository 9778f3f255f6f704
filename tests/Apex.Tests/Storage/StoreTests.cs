using Apex.Client;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Storage;

/// <summary>A real database for the store conformance tests: each concern's tests run unchanged on both.</summary>
public interface ITestDatabase : IAsyncDisposable
{
    internal Task<Database> CreateAsync();
}

public sealed class SqliteTestDatabase : ITestDatabase
{
    private readonly string _path = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");

    Task<Database> ITestDatabase.CreateAsync() => Task.FromResult<Database>(new SqliteDatabase(_path));

    public ValueTask DisposeAsync()
    {
        ApexTestServer.DeleteDatabase(_path);
        return ValueTask.CompletedTask;
    }
}

/// <summary>Tests of <see cref="SqliteDatabase"/> itself: each test gets a new database file with <paramref name="schema"/> in it.</summary>
public abstract class SqliteDatabaseTests(params string[] schema) : IAsyncLifetime
{
    private readonly SqliteTestDatabase _file = new();

    internal SqliteDatabase Db { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Db = (SqliteDatabase)await ((ITestDatabase)_file).CreateAsync();
        await Db.WriteAsync(async (c, t) =>
        {
            foreach (var sql in schema) await c.ExecuteAsync(sql, t, default);
            return 0;
        }, default);
    }

    public async Task DisposeAsync()
    {
        await Db.DisposeAsync();
        await _file.DisposeAsync();
    }
}

public sealed class PostgresTestDatabaseForStores : ITestDatabase
{
    private PostgresTestDatabase _database = null!;

    async Task<Database> ITestDatabase.CreateAsync()
    {
        _database = await PostgresTestDatabase.CreateAsync();
        return new PostgresDatabase(_database.ConnectionString);
    }

    public async ValueTask DisposeAsync() => await _database.DisposeAsync();
}

/// <summary>The stores over one fresh, migrated database, and the records the tests build on.</summary>
public abstract class StoreTests<TDatabase> : IAsyncLifetime where TDatabase : ITestDatabase, new()
{
    private readonly TDatabase _test = new();
    private protected readonly IdGenerator _ids = new(TimeProvider.System);
    private protected readonly DateTimeOffset _now = DateTimeOffset.UtcNow;

    private protected Database Database { get; private set; } = null!;
    private protected IAccountStore Accounts { get; private set; } = null!;
    private protected IThreadStore Threads { get; private set; } = null!;
    private protected IRunStore Runs { get; private set; } = null!;
    private protected IEventStore Events { get; private set; } = null!;
    private protected IWorkloadStore Workloads { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Database = await _test.CreateAsync();
        await Migrations.ApplyAsync(Database, TimeProvider.System, CancellationToken.None);
        var node = new NodeIdentity();
        Accounts = new SqlAccountStore(Database, new StoreSignals(), node);
        Threads = new SqlThreadStore(Database);
        Runs = new SqlRunStore(Database, node);
        Events = new SqlEventStore(Database, node);
        Workloads = new SqlWorkloadStore(Database);
    }

    public async Task DisposeAsync()
    {
        await Database.DisposeAsync();
        await _test.DisposeAsync();
    }

    private protected async Task<string> UserAsync(string? email = null)
    {
        var id = _ids.NewId();
        email ??= $"{id}@example.com";
        Assert.True(await Accounts.CreateUserAsync(new UserRecord(id, email, email.ToUpperInvariant(), "hash", "name", "free", _now, 0, null), default));
        return id;
    }

    private protected async Task<string> ThreadAsync(string userId)
    {
        var id = _ids.NewId();
        await Threads.CreateThreadAsync(new ThreadRecord(id, userId, "t", QueueStrategies.Enqueue, 0, _now, _now), int.MaxValue, default);
        return id;
    }

    private protected async Task<RunRecord> SubmitAsync(string userId, string threadId, string strategy = QueueStrategies.Enqueue)
    {
        var message = new MessageRecord(_ids.NewId(), threadId, userId, null, "user", "hello", _now);
        var run = new RunRecord(_ids.NewId(), threadId, userId, RunStatus.Queued, strategy, message.Id, _now, null, null, null, null, false);
        var result = await Runs.SubmitRunAsync(message with { RunId = run.Id }, run, Queued(run, message.Id), 10, default);
        Assert.Equal(SubmitOutcome.Queued, result.Outcome);
        Assert.Equal(run.Id, result.Queued!.RunId);
        Assert.True(result.Queued.Seq > 0);
        return run;
    }

    private protected static Func<int, ApexEvent> Queued(RunRecord run, string messageId) => position =>
        new RunQueued(new RunQueuedData(messageId, run.Strategy, position)) { EventId = Guid.NewGuid().ToString(), ThreadId = run.ThreadId, RunId = run.Id, UserId = run.UserId, Timestamp = DateTimeOffset.UtcNow };

    private protected static ApexEvent Event(string userId, string threadId, string? runId = null) =>
        new AgentThinking(new AgentThinkingData("x")) { EventId = Guid.NewGuid().ToString(), ThreadId = threadId, RunId = runId, UserId = userId, Timestamp = DateTimeOffset.UtcNow };
}
