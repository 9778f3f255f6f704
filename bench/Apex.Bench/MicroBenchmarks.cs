using Microsoft.Extensions.DependencyInjection;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Agents;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Llm;
using Apex.Server.Storage;
using Apex.Server.Tools;
using BenchmarkDotNet.Attributes;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Apex.Bench;

/// <summary>The server's own parts, wired by hand as the DI container would, on a throwaway SQLite file.</summary>
internal sealed class Rig : IAsyncDisposable
{
    public Rig()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"apex-bench-{Guid.NewGuid():N}.db");
        Database = new SqliteDatabase(Path);
        Migrations.ApplyAsync(Database, TimeProvider.System, CancellationToken.None).GetAwaiter().GetResult();
        var node = new NodeIdentity();
        Accounts = new SqlAccountStore(Database, new StoreSignals(), node);
        Threads = new SqlThreadStore(Database);
        Runs = new SqlRunStore(Database, node);
        Events = new SqlEventStore(Database, node);
        Ids = new IdGenerator(TimeProvider.System);
        Telemetry = new ApexTelemetry(new ServiceCollection().AddMetrics().BuildServiceProvider()
            .GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        Log = new EventLog(Events, new EventBus(new StoreSignals()), Ids, TimeProvider.System, Telemetry, NullLogger<EventLog>.Instance);
        Log.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        Tools = new ToolRegistry([new WorkloadSummaryTool(new SqlWorkloadStore(Database))], []);
        Factory = new ExecutionEngineFactory(Accounts, Threads, Runs, new SqlUsageStore(Database), Options.Create(new WorkloadOptions()), Log, Telemetry, Tools,
            new AgentCatalog(new AgentRegistry(AgentTeam.Default()), new SqlAgentStore(Database)), ModelPipeline.Build(new BuiltInChatClient(TimeSpan.Zero, TimeProvider.System), new LimitsOptions().MaxModelTurnsPerAgent, NullLoggerFactory.Instance),
            Ids, TimeProvider.System, Options.Create(new LimitsOptions()), new BudgetLedger(new SqlUsageStore(Database), Options.Create(new BudgetOptions())), node, new SqlApprovalStore(Database, node), Options.Create(new ApprovalOptions()), NullLoggerFactory.Instance);
        var now = DateTimeOffset.UtcNow;
        UserId = Ids.NewId();
        Accounts.CreateUserAsync(new UserRecord(UserId, "bench@example.com", "BENCH@EXAMPLE.COM", "x", "bench", Tiers.Free, now, 0, null), CancellationToken.None).GetAwaiter().GetResult();
        ThreadId = Ids.NewId();
        Threads.CreateThreadAsync(new ThreadRecord(ThreadId, UserId, "bench", QueueStrategies.Enqueue, 0, now, now), int.MaxValue, CancellationToken.None).GetAwaiter().GetResult();
        Run = new RunRecord(Ids.NewId(), ThreadId, UserId, RunStatus.Running, QueueStrategies.Enqueue, Ids.NewId(), now, now, null, null, "bench", false);
    }

    public string Path { get; }
    public Database Database { get; }
    public ApexTelemetry Telemetry { get; }
    public SqlAccountStore Accounts { get; }
    public SqlThreadStore Threads { get; }
    public SqlRunStore Runs { get; }
    public SqlEventStore Events { get; }
    public IdGenerator Ids { get; }
    public EventLog Log { get; }
    public ToolRegistry Tools { get; }
    public ExecutionEngineFactory Factory { get; }
    public string UserId { get; }
    public string ThreadId { get; }
    public RunRecord Run { get; }

    public async ValueTask DisposeAsync()
    {
        await Log.StopAsync(CancellationToken.None);
        await Database.DisposeAsync();
        foreach (var suffix in new[] { "", "-wal", "-shm" }) File.Delete(Path + suffix);
    }
}

[MemoryDiagnoser]
public class ExecutionBenchmarks
{
    private Rig _rig = null!;

    [GlobalSetup]
    public void Setup() => _rig = new Rig();

    [GlobalCleanup]
    public void Cleanup() => _rig.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark(Description = "UserExecutionContext.Create")]
    public object CreateContext() =>
        UserExecutionContext.Create(_rig.UserId, _rig.ThreadId, _rig.Run.Id, Tiers.Free, DateTimeOffset.UtcNow);

    private readonly IdGenerator _ids = new(TimeProvider.System);

    [Benchmark(Description = "IdGenerator.NewId (every stored event has one)")]
    public string NewId() => _ids.NewId();

    [Benchmark(Description = "context + engine for a run")]
    public object CreateEngine()
    {
        var engine = _rig.Factory.Create(_rig.Run, Tiers.Free, DateTimeOffset.UtcNow);
        engine.Dispose();
        return engine;
    }
}

[MemoryDiagnoser]
public class EventBenchmarks
{
    private readonly ApexEvent _event = new ToolCompleted(new ToolCompletedData("call_data_1", "cost_breakdown", "ok", 12.5,
        JsonSerializer.SerializeToElement(new CostBreakdownResult("model", 27.75, 59.46, [new CostGroupFigure("gpt-4o", 1200, 20.5, 0.74), new CostGroupFigure("gpt-4o-mini", 3000, 7.25, 0.26)]),
            ApexJsonContext.Default.CostBreakdownResult), null))
    {
        EventId = "01a2016f-a034-7000-a218-987a45311b7d", Seq = 17, ThreadId = "01a2016f-a296-7000-995b-8965ac0a208b", RunId = "01a2016f-a43e-7001-8edb-6587a6390d1d",
        UserId = "01a2016f-a034-7000-a218-987a45311b7d", AgentName = "data", Timestamp = DateTimeOffset.UtcNow,
    };
    private Rig _rig = null!;

    [GlobalSetup]
    public void Setup() => _rig = new Rig();

    [GlobalCleanup]
    public void Cleanup() => _rig.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark(Description = "serialize one event envelope")]
    public byte[] Serialize() => JsonSerializer.SerializeToUtf8Bytes(_event, ApexJsonContext.Default.ApexEvent);

    [Benchmark(Description = "append 1 event (one transaction)", OperationsPerInvoke = 1)]
    public Task AppendOne() => _rig.Events.AppendEventsAsync([new EventAppend(Fresh())], CancellationToken.None);

    [Benchmark(Description = "append 64 events (one transaction), per event", OperationsPerInvoke = 64)]
    public Task AppendBatch() => _rig.Events.AppendEventsAsync([.. Enumerable.Range(0, 64).Select(_ => new EventAppend(Fresh()))], CancellationToken.None);

    /// <summary>A tool_completed with its own id (its usage row is keyed by the event id).</summary>
    private ApexEvent Fresh() => _event with { EventId = _rig.Ids.NewId(), ThreadId = _rig.ThreadId, UserId = _rig.UserId };

    [Benchmark(Description = "event log append (batched writer, stored + published)")]
    public Task AppendThroughLog() => _rig.Log.AppendAsync(_event with { EventId = null, ThreadId = _rig.ThreadId, UserId = _rig.UserId }, CancellationToken.None);
}

[MemoryDiagnoser]
public class ToolBenchmarks
{
    private Rig _rig = null!;
    private ToolDispatcher _dispatcher = null!;
    private UserExecutionContext _context = null!;
    private RunControl _control = null!;

    [GlobalSetup]
    public void Setup()
    {
        _rig = new Rig();
        _context = UserExecutionContext.Create(_rig.UserId, _rig.ThreadId, _rig.Run.Id, Tiers.Free, DateTimeOffset.UtcNow);
        _control = new RunControl(TimeSpan.FromMinutes(5), TimeProvider.System);
        _dispatcher = new ToolDispatcher(_rig.Tools, new RunEvents(_rig.UserId, _rig.ThreadId, _rig.Run.Id, _rig.Log), _control, _rig.Telemetry, new LimitsOptions(), NullLogger.Instance);
    }

    [GlobalCleanup]
    public void Cleanup() => _rig.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark(Description = "one tool call through the ToolDispatcher (2 events queued)")]
    public Task<FunctionResultContent> CallTool() =>
        _dispatcher.InvokeAsync(_context, AgentNames.Data, new FunctionCallContent("call_1", "workload_summary", new Dictionary<string, object?>()), requiresApproval: false, CancellationToken.None);
}

/// <summary>One whole run of the team, in process: claim, every agent and tool, every event stored and published.</summary>
[MemoryDiagnoser]
public class RunBenchmarks
{
    private Rig _rig = null!;

    [GlobalSetup]
    public void Setup() => _rig = new Rig();

    [GlobalCleanup]
    public void Cleanup() => _rig.DisposeAsync().AsTask().GetAwaiter().GetResult();

    [Benchmark(Description = "one complete run (no data: triage, data_helper, reporting)")]
    public async Task CompleteRun()
    {
        var now = DateTimeOffset.UtcNow;
        var message = new MessageRecord(_rig.Ids.NewId(), _rig.ThreadId, _rig.UserId, null, "user", "How can I cut my LLM cost?", now);
        var run = new RunRecord(_rig.Ids.NewId(), _rig.ThreadId, _rig.UserId, RunStatus.Queued, QueueStrategies.Enqueue, message.Id, now, null, null, null, null, false);
        await _rig.Runs.SubmitRunAsync(message with { RunId = run.Id }, run,
            position => new RunQueued(new RunQueuedData(message.Id, run.Strategy, position)) { EventId = _rig.Ids.NewId(), ThreadId = run.ThreadId, RunId = run.Id, UserId = run.UserId, Timestamp = now },
            1000, CancellationToken.None);
        using var engine = (await _rig.Factory.ClaimNextAsync(CancellationToken.None))!;
        await engine.RunAsync();
    }
}
