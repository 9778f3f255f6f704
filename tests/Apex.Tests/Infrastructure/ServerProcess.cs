using System.Collections.Concurrent;
using System.Diagnostics;
using Apex.Client;

namespace Apex.Tests.Infrastructure;

/// <summary>
/// The server as its own OS process (the built Apex.Server.dll), for what an in-process host
/// cannot show: being killed with SIGKILL, and several nodes.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ServerProcess(Process process)
    {
        _process = process;
    }

    public Uri BaseAddress { get; private set; } = null!;

    public int ProcessId => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>What the server wrote to its console (its log, at Warning and above unless configured otherwise).</summary>
    public ConcurrentQueue<string> Output { get; } = new();

    public static async Task<ServerProcess> StartAsync(string databasePath, Dictionary<string, string>? environment = null, CancellationToken cancellationToken = default,
        string? workingDirectory = null)
    {
        // Port 0, and the port read from the server's own "Now listening on" line: a port picked here and bound later could be
        // taken in between by another test's server, whose /readyz would then answer for this one.
        var info = new ProcessStartInfo("dotnet", [BuildOutput.ProjectDll("Apex.Server", "Apex.Server.dll"), "--urls", "http://127.0.0.1:0"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        info.Environment["Apex__Storage__ConnectionString"] = databasePath;
        info.Environment["Logging__LogLevel__Default"] = "Warning";
        info.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        foreach (var (key, value) in environment ?? []) info.Environment[key] = value;
        var process = Process.Start(info)!;
        var server = new ServerProcess(process);
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            server.Output.Enqueue(e.Data);
            const string marker = "Now listening on: ";
            var at = e.Data.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0) listening.TrySetResult(new Uri(e.Data[(at + marker.Length)..].Trim() + "/"));
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) server.Output.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        while (!listening.Task.IsCompleted)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited) throw new InvalidOperationException($"The server exited with {process.ExitCode}: {string.Join("\n", server.Output)}");
            await Task.WhenAny(listening.Task, Task.Delay(100, cancellationToken));
        }
        server.BaseAddress = await listening.Task;
        using var http = new HttpClient { BaseAddress = server.BaseAddress };
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (process.HasExited) throw new InvalidOperationException($"The server exited with {process.ExitCode}.");
            try
            {
                if ((await http.GetAsync(new Uri("readyz", UriKind.Relative), cancellationToken)).IsSuccessStatusCode) return server;
            }
            catch (HttpRequestException)
            {
                // not listening yet
            }
            await Task.Delay(100, cancellationToken);
        }
    }

    /// <summary>Runs the server with these command-line settings, on a new database, until it exits (a start that must fail): its exit code and standard error.</summary>
    public static async Task<(int ExitCode, string Stderr)> RunToExitAsync(IEnumerable<string> settings, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo("dotnet", [BuildOutput.ProjectDll("Apex.Server", "Apex.Server.dll"), "--urls", "http://127.0.0.1:0", .. settings])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.Environment["Apex__Storage__ConnectionString"] = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");
        using var process = Process.Start(info)!;
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        return (process.ExitCode, await stderr);
    }

    public ApexClient CreateClient() => new(new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) });

    /// <summary>SIGKILL: no shutdown code runs.</summary>
    public void Kill()
    {
        _process.Kill(entireProcessTree: false);
        _process.WaitForExit();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
