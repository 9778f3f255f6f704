using System.Diagnostics;
using System.Text;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Cli;

/// <summary>
/// The <c>apex</c> command as a real process (<c>dotnet apex.dll</c> from the CLI project's build output) against one server,
/// with its own config folder (<c>APEX_CONFIG_DIR</c>), so each test is a separate user on a separate machine.
/// </summary>
internal sealed class ApexCli(Uri server) : IDisposable
{
    public string ConfigDir { get; } = Path.Combine(Path.GetTempPath(), "apex-cli-tests", Guid.NewGuid().ToString("N"), "apex");

    public Task<CliResult> RunAsync(params string[] args) => RunAsync(args, stdin: null, Waits.Timeout());

    public async Task<CliResult> RunAsync(string[] args, string? stdin, CancellationToken cancellationToken)
    {
        using var running = Start(args);
        if (stdin is not null) await running.Process.StandardInput.WriteAsync(stdin);
        running.Process.StandardInput.Close();
        return await running.WaitAsync(cancellationToken);
    }

    public Running Start(params string[] args)
    {
        // Through env --default-signal=INT: a test run started in the background by a non-interactive shell inherits SIGINT
        // ignored, and a process that starts with SIGINT ignored never sees Ctrl+C; a terminal user's apex does.
        var info = new ProcessStartInfo("/usr/bin/env")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add("--default-signal=INT");
        info.ArgumentList.Add("dotnet");
        info.ArgumentList.Add(BuildOutput.ProjectDll("Apex.Cli", "apex.dll"));
        foreach (var arg in args) info.ArgumentList.Add(arg);
        info.Environment["APEX_CONFIG_DIR"] = ConfigDir;
        info.Environment["APEX_SERVER"] = server.ToString();
        return new Running(Process.Start(info)!);
    }

    public void Dispose()
    {
        var root = Path.GetDirectoryName(ConfigDir)!;
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
    }

    /// <summary>A started apex process; its output is collected line by line, and a test can wait for a line.</summary>
    internal sealed class Running : IDisposable
    {
        private readonly StringBuilder _stdout = new();
        private readonly StringBuilder _stderr = new();
        private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Seen)> _waiters = [];
        private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _stderrClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Running(Process process)
        {
            Process = process;
            process.OutputDataReceived += (_, e) =>
            {
                if (e.Data is null)
                {
                    _stdoutClosed.TrySetResult();
                    return;
                }
                lock (_waiters)
                {
                    _stdout.AppendLine(e.Data);
                    foreach (var waiter in _waiters.Where(w => w.Match(e.Data)).ToList())
                    {
                        waiter.Seen.TrySetResult(e.Data);
                        _waiters.Remove(waiter);
                    }
                }
            };
            process.ErrorDataReceived += (_, e) =>
            {
                if (e.Data is null) _stderrClosed.TrySetResult();
                else lock (_waiters) _stderr.AppendLine(e.Data);
            };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public Process Process { get; }

        /// <summary>Waits for a stdout line that matches (one already written counts).</summary>
        public Task<string> LineAsync(Func<string, bool> match, CancellationToken cancellationToken)
        {
            var seen = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_waiters)
            {
                var already = _stdout.ToString().Split('\n').Select(l => l.TrimEnd('\r')).FirstOrDefault(match);
                if (already is not null) seen.TrySetResult(already);
                else _waiters.Add((match, seen));
            }
            return seen.Task.WaitAsync(cancellationToken);
        }

        /// <summary>SIGINT, as Ctrl+C in a terminal sends it.</summary>
        public async Task InterruptAsync(CancellationToken cancellationToken)
        {
            using var kill = Process.Start("/bin/kill", ["-INT", Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync(cancellationToken);
            Assert.Equal(0, kill.ExitCode);
        }

        public async Task<CliResult> WaitAsync(CancellationToken cancellationToken)
        {
            try
            {
                await Process.WaitForExitAsync(cancellationToken);
                await Task.WhenAll(_stdoutClosed.Task, _stderrClosed.Task).WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Process.Kill();
                throw new TimeoutException($"apex did not exit in time. stdout:\n{_stdout}\nstderr:\n{_stderr}");
            }
            lock (_waiters) return new CliResult(Process.ExitCode, _stdout.ToString(), _stderr.ToString());
        }

        public void Dispose()
        {
            if (!Process.HasExited) Process.Kill();
            Process.Dispose();
        }
    }
}

internal sealed record CliResult(int ExitCode, string Stdout, string Stderr)
{
    public IEnumerable<string> Lines => Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.TrimEnd('\r'));

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}
