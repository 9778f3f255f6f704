namespace Apex.Server.Execution;

/// <summary>
/// The run's own cancellation, owned by the worker that runs it (not by the request that started
/// it), with the reason it was cancelled: the user, an interrupting message, shutdown, or the run timeout.
/// </summary>
internal sealed class RunControl : IDisposable
{
    private readonly CancellationTokenSource _cts;
    private string? _reason;

    public RunControl(TimeSpan timeout, TimeProvider time)
    {
        _cts = new CancellationTokenSource(timeout, time);
    }

    public CancellationToken Token => _cts.Token;

    /// <summary>Why the run was cancelled; <c>timeout</c> when nobody asked.</summary>
    public string Reason => Volatile.Read(ref _reason) ?? CancelReasons.Timeout;

    public void Cancel(string reason)
    {
        Interlocked.CompareExchange(ref _reason, reason, null);
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // The run ended and let its control go between being looked up and cancelled (a shutdown's cancel of the runs
            // still draining): there is nothing left to cancel.
        }
    }

    public void Dispose() => _cts.Dispose();
}
