using Apex.Client;

namespace Apex.Tests.Infrastructure;

internal static class Waits
{
    /// <summary>Every wait in the suite is bounded: a hang fails the test instead of the CI run.</summary>
    public static CancellationToken Timeout(int seconds = 60) => new CancellationTokenSource(TimeSpan.FromSeconds(seconds)).Token;

    /// <summary>Sends a message over the socket and collects the run's stored events up to its terminal event.</summary>
    public static async Task<List<ApexEvent>> RunToEndAsync(this ApexSocket socket, string content, string? threadId = null, CancellationToken cancellationToken = default)
    {
        await socket.SendMessageAsync(content, threadId, cancellationToken: cancellationToken);
        var events = await socket.ReceiveUntilAsync(e => e.IsTerminal, cancellationToken);
        return [.. events.Where(e => e.Seq > 0)];
    }

    /// <summary>Follows a thread over SSE until the run's terminal event.</summary>
    public static async Task<ApexEvent> TerminalEventAsync(this ApexClient user, string threadId, string runId, CancellationToken cancellationToken)
    {
        await foreach (var evt in user.StreamEventsAsync(threadId, 0, cancellationToken: cancellationToken))
            if (evt.RunId == runId && evt.IsTerminal) return evt;
        throw new InvalidOperationException($"The thread's event stream ended before run {runId} did.");
    }
}
