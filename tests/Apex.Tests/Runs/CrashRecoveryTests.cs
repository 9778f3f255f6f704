using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Runs;

public sealed class CrashRecoveryTests
{
    [Fact]
    public async Task AServerKilledMidRunEndsTheRunAsFailedWithServerRestartAndKeepsEverythingBefore()
    {
        var path = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var slow = new Dictionary<string, string> { ["Apex__Llm__BuiltInDelay"] = "00:00:00.500" };
        var ct = Waits.Timeout(120);
        try
        {
            List<ApexEvent> before;
            TokenResponse tokens;
            await using (var first = await ServerProcess.StartAsync(path, slow, ct))
            {
                using var client = first.CreateClient();
                tokens = await client.RegisterAsync("crash@example.com", "correct horse battery", ct);
                using var socket = await client.ConnectAsync(ct);
                await socket.SendMessageAsync("analyse my costs", cancellationToken: ct);
                before = [.. (await socket.ReceiveUntilAsync(e => e is ToolExecuting, ct)).Where(e => e.Seq > 0)];
                first.Kill();
            }

            await using var second = await ServerProcess.StartAsync(path, cancellationToken: ct);
            using var again = second.CreateClient();
            await again.LoginAsync("crash@example.com", "correct horse battery", ct);
            using var resumed = await again.ConnectAsync(ct);
            await resumed.SendAsync("resume", new ResumePayload(before[0].ThreadId!, 0), ApexJsonContext.Default.ResumePayload, ct);
            Assert.IsType<ThreadFollowed>(await resumed.ReceiveAsync(ct));
            var after = await resumed.ReceiveUntilAsync(e => e.IsTerminal, ct);

            Assert.Equal(before.Select(e => e.EventId), after.Take(before.Count).Select(e => e.EventId));
            var failed = Assert.IsType<RunFailed>(after[^1]);
            Assert.Equal("server_restart", failed.Data.Reason);
            Assert.Single(after, e => e.IsTerminal);
            Assert.Equal(Enumerable.Range(1, after.Count).Select(i => (long)i), after.Select(e => e.Seq));
            // What the dead process left open is closed before the terminal event.
            foreach (var call in after.OfType<ToolExecuting>())
                Assert.Single(after.OfType<ToolCompleted>(), c => c.Data.CallId == call.Data.CallId);
            Assert.Equal(after.OfType<AgentStarted>().Count(), after.OfType<AgentCompleted>().Count());
            Assert.Equal("failed", (await again.GetRunAsync(failed.RunId!, ct)).Status);

            // The thread works again.
            var next = await resumed.RunToEndAsync("again", before[0].ThreadId, ct);
            Assert.IsType<RunCompleted>(next[^1]);
            Assert.Equal(tokens.User.Id, next[^1].UserId);
        }
        finally
        {
            ApexTestServer.DeleteDatabase(path);
        }
    }
}
