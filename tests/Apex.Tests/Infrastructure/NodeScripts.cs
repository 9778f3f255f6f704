using System.Diagnostics;
using System.Text.Json;

namespace Apex.Tests.Infrastructure;

/// <summary>
/// Runs the node scripts of tests/Apex.Tests/Interop/node against the npm packages scripts/test.sh installs
/// (APEX_TEST_NODE_MODULES). A script prints one JSON line with what it saw, last.
/// </summary>
internal static class NodeScripts
{
    public static async Task<JsonDocument> RunAsync(string script, string package, IEnumerable<string> arguments, CancellationToken cancellationToken)
    {
        var modules = Environment.GetEnvironmentVariable("APEX_TEST_NODE_MODULES") is { } m && Directory.Exists(Path.Combine(m, package))
            ? m : throw new InvalidOperationException($"APEX_TEST_NODE_MODULES is not set or lacks {package}: run the tests with scripts/test.sh, which installs it.");
        using var node = Process.Start(new ProcessStartInfo("node", [Path.Combine(AppContext.BaseDirectory, "Interop", "node", script), modules, .. arguments])
        { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = node.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = node.StandardError.ReadToEndAsync(cancellationToken);
        await node.WaitForExitAsync(cancellationToken);
        Assert.True(node.ExitCode == 0, await errors);
        var lines = (await output).Trim().Split('\n');
        return JsonDocument.Parse(lines[^1]);
    }
}
