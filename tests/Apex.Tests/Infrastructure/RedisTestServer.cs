using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Apex.Tests.Infrastructure;

/// <summary>A test that needs Redis: skipped when scripts/test.sh (scripts/redis.sh) has not started one (<c>APEX_TEST_REDIS</c>).</summary>
public sealed class RedisFactAttribute : FactAttribute
{
    public RedisFactAttribute()
    {
        if (RedisTestServer.Shared is null) Skip = "APEX_TEST_REDIS is not set: run the tests with scripts/test.sh, which starts a Redis server for them.";
    }
}

/// <summary>
/// Redis for the tests: the shared server of scripts/redis.sh (<see cref="Shared"/>; each cluster takes its own key prefix), or a
/// private <c>redis-server</c> process that a test stops and starts again on the same port.
/// </summary>
public sealed class RedisTestServer : IAsyncDisposable
{
    private readonly int _port;
    private Process? _process;

    private RedisTestServer(int port) => _port = port;

    /// <summary>The shared server's configuration string, or null when there is none.</summary>
    public static string? Shared => Environment.GetEnvironmentVariable("APEX_TEST_REDIS") is { Length: > 0 } configuration ? configuration : null;

    public string Configuration => $"127.0.0.1:{_port}";

    /// <summary>Settings that put a cluster's nodes on this Redis (or the shared one) under a key prefix of their own.</summary>
    public static Dictionary<string, string> NodeSettings(string configuration) => new()
    {
        ["Apex__Redis__Configuration"] = configuration,
        ["Apex__Redis__Prefix"] = "apex-test-" + Guid.NewGuid().ToString("N")[..12],
    };

    public static async Task<RedisTestServer> StartPrivateAsync(CancellationToken cancellationToken)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var server = new RedisTestServer(port);
        await server.StartAsync(cancellationToken);
        return server;
    }

    /// <summary>Starts (again) on the same port, and returns once it answers PING.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var binary = Environment.GetEnvironmentVariable("APEX_TEST_REDIS_SERVER") is { Length: > 0 } path ? path : "redis-server";
        _process = Process.Start(new ProcessStartInfo(binary, ["--bind", "127.0.0.1", "--port", _port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--save", "", "--appendonly", "no", "--dir", Path.GetTempPath()])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        while (!await PingAsync(cancellationToken))
        {
            if (_process.HasExited) throw new InvalidOperationException($"redis-server exited with {_process.ExitCode}.");
            await Task.Delay(50, cancellationToken);
        }
    }

    /// <summary>SIGKILL: every client's connection drops at once, as when the Redis machine goes away.</summary>
    public void Stop()
    {
        if (_process is not { HasExited: false } process) return;
        process.Kill();
        process.WaitForExit();
        process.Dispose();
        _process = null;
    }

    private async Task<bool> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, _port, cancellationToken);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), cancellationToken);
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer, cancellationToken);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public ValueTask DisposeAsync()
    {
        Stop();
        return ValueTask.CompletedTask;
    }
}
