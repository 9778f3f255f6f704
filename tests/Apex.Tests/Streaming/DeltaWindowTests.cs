using Apex.Client;
using Apex.Server.Events;
using Apex.Server.Storage;
using Apex.Tests.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Apex.Tests.Streaming;

/// <summary>
/// Answer pieces are joined over the delta window: the first piece goes out at once, the ones that follow within the window
/// go out together when it ends, and any other event of the run sends what waits first, so the order never changes.
/// The clock is a fake one (the window's timer fires when the test moves it); the event log and SQLite are real.
/// </summary>
public sealed class DeltaWindowTests : StoreTests<SqliteTestDatabase>
{
    private static readonly TimeSpan Window = TimeSpan.FromMilliseconds(100);

    [Fact]
    public async Task PiecesWithinTheWindowAreJoinedTheFirstNeverWaitsAndOtherEventsKeepTheirPlace()
    {
        var ct = Infrastructure.Waits.Timeout();
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var run = await SubmitAsync(user, thread);
        Assert.Equal(run.Id, (await Runs.ClaimNextRunAsync("n1", 5, _now, _now.AddSeconds(15), ct))!.Id);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        var bus = new EventBus(new StoreSignals());
        var log = new EventLog(Events, bus, _ids, clock, new ApexTelemetry(meters), NullLogger<EventLog>.Instance);
        await log.StartAsync(ct);
        using var published = bus.Subscribe(thread);
        async Task<ApexEvent> NextAsync() => (await published.Channel.Reader.ReadAsync(ct))!;
        try
        {
            var events = new RunEvents(user, thread, run.Id, log, null, Window, clock);
            await events.MessageDeltaAsync("reporting", "m1", "The ");
            Assert.Equal("The ", Assert.IsType<MessageDelta>(await NextAsync()).Data.Delta);

            // Within the window: held, then sent as one piece when the window ends.
            await events.MessageDeltaAsync("reporting", "m1", "answer ");
            await events.MessageDeltaAsync("reporting", "m1", "is ");
            clock.Advance(Window);
            Assert.Equal("answer is ", Assert.IsType<MessageDelta>(await NextAsync()).Data.Delta);

            // After a pause as long as the window, the next piece goes out at once again.
            clock.Advance(Window * 3);
            await events.MessageDeltaAsync("reporting", "m1", "42");
            Assert.Equal("42", Assert.IsType<MessageDelta>(await NextAsync()).Data.Delta);

            // A held piece goes out before the event that follows it, without waiting for the window.
            await events.MessageDeltaAsync("reporting", "m1", ".");
            await events.AgentThinkingAsync("reporting", "done writing");
            Assert.Equal(".", Assert.IsType<MessageDelta>(await NextAsync()).Data.Delta);
            Assert.IsType<AgentThinking>(await NextAsync());

            // A piece of another answer is never joined to this one's, and the run's end sends what is held.
            await events.MessageDeltaAsync("reporting", "m2", "Second");
            await events.MessageDeltaAsync("reporting", "m2", " answer");
            await events.CompletedAsync("m2", 1);
            var second = Assert.IsType<MessageDelta>(await NextAsync());
            Assert.Equal(("m2", "Second"), (second.Data.MessageId, second.Data.Delta));
            Assert.Equal(" answer", Assert.IsType<MessageDelta>(await NextAsync()).Data.Delta);
            Assert.IsType<RunCompleted>(await NextAsync());

            var stored = await Events.ReadEventsAsync(user, thread, 0, 100, ct);
            Assert.Equal(["The ", "answer is ", "42", ".", "Second", " answer"], stored.OfType<MessageDelta>().Select(d => d.Data.Delta));
        }
        finally
        {
            await log.StopAsync(default);
        }
    }

    [Fact]
    public async Task TheWindowGrowsWithTheAnswerToATenthOfItsAgeAndAtMostTenWindows()
    {
        var ct = Infrastructure.Waits.Timeout();
        var user = await UserAsync();
        var thread = await ThreadAsync(user);
        var run = await SubmitAsync(user, thread);
        Assert.Equal(run.Id, (await Runs.ClaimNextRunAsync("n1", 5, _now, _now.AddSeconds(15), ct))!.Id);
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        var bus = new EventBus(new StoreSignals());
        var log = new EventLog(Events, bus, _ids, clock, new ApexTelemetry(meters), NullLogger<EventLog>.Instance);
        await log.StartAsync(ct);
        using var published = bus.Subscribe(thread);
        async Task<string> NextAsync() => Assert.IsType<MessageDelta>(await published.Channel.Reader.ReadAsync(ct)).Data.Delta;
        try
        {
            var events = new RunEvents(user, thread, run.Id, log, null, Window, clock);
            await events.MessageDeltaAsync("reporting", "m1", "a");
            Assert.Equal("a", await NextAsync());

            // Five seconds into the answer the window is 500 ms: a piece 100 ms after the held one still joins it.
            clock.Advance(TimeSpan.FromSeconds(5));
            await events.MessageDeltaAsync("reporting", "m1", "b");
            Assert.Equal("b", await NextAsync());
            await events.MessageDeltaAsync("reporting", "m1", "c");
            clock.Advance(TimeSpan.FromMilliseconds(100));
            await events.MessageDeltaAsync("reporting", "m1", "d");
            clock.Advance(TimeSpan.FromMilliseconds(400));
            Assert.Equal("cd", await NextAsync());

            // A minute in, the window stops growing at ten windows (1 s).
            clock.Advance(TimeSpan.FromSeconds(60));
            await events.MessageDeltaAsync("reporting", "m1", "e");
            Assert.Equal("e", await NextAsync());
            await events.MessageDeltaAsync("reporting", "m1", "f");
            clock.Advance(TimeSpan.FromMilliseconds(999));
            await events.MessageDeltaAsync("reporting", "m1", "g");
            clock.Advance(TimeSpan.FromMilliseconds(1));
            Assert.Equal("fg", await NextAsync());

            // A new answer starts again at the base window.
            await events.MessageDeltaAsync("reporting", "m2", "h");
            Assert.Equal("h", await NextAsync());
            await events.MessageDeltaAsync("reporting", "m2", "i");
            clock.Advance(Window);
            Assert.Equal("i", await NextAsync());
            await events.CompletedAsync("m2", 1);
            Assert.IsType<RunCompleted>(await published.Channel.Reader.ReadAsync(ct));
        }
        finally
        {
            await log.StopAsync(default);
        }
    }
}
