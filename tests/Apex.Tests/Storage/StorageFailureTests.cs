using Microsoft.Extensions.DependencyInjection;
using Apex.Client;
using Apex.Server.Events;
using Apex.Server.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apex.Tests.Storage;

/// <summary>
/// An append that the database refuses for good (here PostgreSQL refusing a NUL character in a text column, a real
/// error, not a mock): the log splits the batch so that the other appends with it are stored, and the run it belongs
/// to ends at once with <c>run_failed</c> reason <c>storage_error</c>, not later as a lost node.
/// </summary>
public sealed class StorageFailureTests : StoreTests<PostgresTestDatabaseForStores>
{
    [Fact]
    public async Task ARunWhoseOwnAppendFailsEndsAtOnceWithStorageErrorAndTheOthersAreStored()
    {
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var otherThread = await ThreadAsync(user);
        var run = await SubmitAsync(user, thread);
        Assert.Equal(run.Id, (await Runs.ClaimNextRunAsync("n1", 5, _now, _now.AddSeconds(15), default))!.Id);
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider()
            .GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        var log = new EventLog(Events, new EventBus(new StoreSignals()), _ids, TimeProvider.System, new ApexTelemetry(meters), NullLogger<EventLog>.Instance);
        await log.StartAsync(default);
        try
        {
            var stopped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var events = new RunEvents(user, thread, run.Id, log, stopped.SetResult);
            await events.RunStartedAsync("n1");
            await events.ToolExecutingAsync("data", "c1", "cost_breakdown", System.Text.Json.JsonDocument.Parse("{}").RootElement);
            // The tool name goes to tool_usage.tool: PostgreSQL refuses the NUL, so this append (and its batch) fails.
            var good = Task.WhenAll(Enumerable.Range(0, 20).Select(_ => log.AppendAsync(Event(user, otherThread), default)));
            await events.ToolCompletedAsync("data", "c1", "cost\0breakdown", "ok", 1, null, null);
            await stopped.Task.WaitAsync(TimeSpan.FromSeconds(30));
            // The run's own end (after its work was stopped) waits for the storage_error terminal and adds nothing.
            await events.CancelledAsync(RunEvents.StorageError);
            Assert.Equal(20, (await good).Count(e => e is not null));

            var stored = await Events.ReadRunEventsAsync(user, run.Id, default);
            var failed = Assert.IsType<RunFailed>(stored[^1]);
            Assert.Equal(RunEvents.StorageError, failed.Data.Reason);
            // PostgreSQL's own words (here: the NUL byte it refused) stay in the server log, not in what clients read.
            Assert.DoesNotContain("0x00", failed.Data.Message, StringComparison.Ordinal);
            Assert.Equal("Storing the run's events failed; the server log has the details.", failed.Data.Message);
            Assert.Single(stored, e => e.IsTerminal);
            // The tool call it opened was closed honestly before the terminal event.
            Assert.Equal("error", Assert.Single(stored.OfType<ToolCompleted>()).Data.Status);
            Assert.Equal(Enumerable.Range(1, stored.Count).Select(i => (long)i), stored.Select(e => e.Seq));
            var ended = (await Runs.GetRunAsync(user, run.Id, default))!;
            Assert.Equal(RunStatus.Failed, ended.Status);
            Assert.StartsWith(RunEvents.StorageError, ended.Error, StringComparison.Ordinal);
        }
        finally
        {
            await log.StopAsync(default);
        }
    }
}
