using System.Net;
using System.Runtime.InteropServices;
using Apex.Client;

namespace Apex.Cli;

/// <summary>
/// Ctrl+C (SIGINT) while a scope is armed cancels that scope's token instead of ending the process; a second Ctrl+C, or one
/// while nothing is armed (at a chat prompt), ends the process as usual (exit 130).
/// </summary>
internal sealed class Interrupt : IDisposable
{
    private readonly PosixSignalRegistration _registration;
    private CancellationTokenSource? _armed;

    public Interrupt() => _registration = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);

    /// <summary>A token Ctrl+C cancels until the returned scope is disposed.</summary>
    public Armed Arm()
    {
        var source = new CancellationTokenSource();
        Volatile.Write(ref _armed, source);
        return new Armed(this, source);
    }

    public void Dispose() => _registration.Dispose();

    private void OnSignal(PosixSignalContext context)
    {
        var armed = Volatile.Read(ref _armed);
        if (armed is null || armed.IsCancellationRequested) return;
        context.Cancel = true;
        armed.Cancel();
    }

    internal sealed class Armed(Interrupt owner, CancellationTokenSource source) : IDisposable
    {
        public CancellationToken Token => source.Token;

        public void Dispose()
        {
            Interlocked.CompareExchange(ref owner._armed, null, source);
            source.Dispose();
        }
    }
}

/// <summary>
/// Reads a thread's events over SSE from a cursor, shows the ones asked for and remembers the last <c>seq</c> seen in the config
/// folder; a dropped stream is resumed from that <c>seq</c> (<c>Last-Event-ID</c>), so nothing is missed or shown twice.
/// </summary>
internal sealed class ThreadReader(Session session, EventPrinter printer, Output output)
{
    private const int Reconnects = 5;
    // After Ctrl+C, how long the run's own terminal event is awaited before giving up on it.
    private static readonly TimeSpan CancelGrace = TimeSpan.FromSeconds(5);

    public long LastSeq { get; private set; }

    /// <summary>Follows the thread after <paramref name="afterSeq"/> until <paramref name="stop"/> says so; returns that event.</summary>
    public async Task<ApexEvent> FollowAsync(string threadId, long afterSeq, Func<ApexEvent, bool> show, Func<ApexEvent, bool> stop, CancellationToken cancellationToken)
    {
        LastSeq = afterSeq;
        var attempt = 0;
        try
        {
            while (true)
            {
                try
                {
                    await foreach (var evt in session.Client.StreamEventsAsync(threadId, LastSeq, cancellationToken: cancellationToken))
                    {
                        attempt = 0;
                        if (evt.Seq <= LastSeq) continue;
                        LastSeq = evt.Seq;
                        if (show(evt)) printer.Print(evt);
                        if (stop(evt)) return evt;
                        if (evt.IsTerminal) await RememberAsync(threadId, cancellationToken);
                    }
                    throw new IOException("the server closed the event stream");
                }
                catch (Exception e) when (e is HttpRequestException or IOException && !cancellationToken.IsCancellationRequested && attempt < Reconnects)
                {
                    attempt++;
                    output.Note($"Connection lost ({e.Message}); resuming after seq {LastSeq} (attempt {attempt} of {Reconnects})…");
                    await Task.Delay(TimeSpan.FromSeconds(attempt), cancellationToken);
                    await session.EnsureFreshAsync(cancellationToken);
                }
            }
        }
        finally
        {
            printer.EndAnswer();
            await RememberAsync(threadId, CancellationToken.None);
        }
    }

    /// <summary>
    /// Follows one run to its terminal event. Ctrl+C (<paramref name="interrupt"/>) cancels the run on the server and waits briefly
    /// for its <c>run_cancelled</c>. Returns the exit code: 0 only for <c>run_completed</c>.
    /// </summary>
    /// <remarks>
    /// A tool call of the run that waits for approval is put to <paramref name="approve"/> (the <c>ask</c> prompt); when it gives no
    /// answer, following stops and the run stays waiting (exit <see cref="ExitCodes.Waiting"/>).
    /// </remarks>
    public async Task<int> FollowRunAsync(string threadId, long afterSeq, string runId, CancellationToken interrupt, CancellationToken cancellationToken,
        Func<ApprovalRequested, CancellationToken, Task<bool>>? approve = null)
    {
        using var stream = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var onInterrupt = interrupt.Register(() => _ = CancelOnServerAsync(runId, stream, cancellationToken));
        ApexEvent end;
        try
        {
            var cursor = afterSeq;
            while (true)
            {
                end = await FollowAsync(threadId, cursor, e => e.RunId == runId, e => e.RunId == runId && (e.IsTerminal || e is ApprovalRequested), stream.Token);
                cursor = LastSeq;
                if (end is not ApprovalRequested asked) break;
                if (approve is null || !await approve(asked, stream.Token))
                {
                    output.Note($"The run waits for the approval of {asked.Data.Tool}: `apex approve {runId} {asked.Data.CallId}` or `apex reject {runId} {asked.Data.CallId}` answers it, " +
                        $"`apex resume {threadId}` follows it.");
                    return ExitCodes.Waiting;
                }
            }
        }
        catch (OperationCanceledException) when (interrupt.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            output.Error($"No run_cancelled within {CancelGrace.TotalSeconds:0} s; the run may still be stopping (see `apex runs {threadId}`).");
            return ExitCodes.Interrupted;
        }
        if (interrupt.IsCancellationRequested) return ExitCodes.Interrupted;
        return end switch
        {
            RunCompleted => ExitCodes.Ok,
            RunFailed failed => Fail(ExitCodes.RunFailed, $"The run failed ({failed.Data.Reason}): {failed.Data.Message}"),
            RunCancelled cancelled => Fail(ExitCodes.RunCancelled, $"The run was cancelled ({cancelled.Data.Reason})."),
            _ => throw new InvalidOperationException($"{end.Type} is not a terminal event."),
        };
    }

    private int Fail(int code, string message)
    {
        output.Error(message);
        return code;
    }

    private async Task CancelOnServerAsync(string runId, CancellationTokenSource stream, CancellationToken cancellationToken)
    {
        output.Note($"Cancelling run {runId}…");
        try
        {
            await session.Client.CancelRunAsync(runId, cancellationToken);
        }
        catch (ApexApiException e) when (e.Status == HttpStatusCode.Conflict)
        {
            // It ended meanwhile: its terminal event is on the stream.
        }
        catch (Exception e) when (e is ApexApiException or HttpRequestException)
        {
            output.Error(e is ApexApiException api ? Output.Describe(api) : e.Message);
            await stream.CancelAsync();
            return;
        }
        stream.CancelAfter(CancelGrace);
    }

    private async Task RememberAsync(string threadId, CancellationToken cancellationToken)
    {
        if (LastSeq > 0) await session.Config.RememberSeqAsync(threadId, LastSeq, cancellationToken);
    }
}
