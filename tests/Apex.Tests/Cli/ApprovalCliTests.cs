using System.Text.RegularExpressions;
using Apex.Client;
using Apex.Tests.Agents;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Cli;

/// <summary><c>apex ask</c> asks for a tool approval on stdin; <c>apex approve</c> / <c>apex reject</c> answer one later. Real processes, the built-in model.</summary>
public sealed partial class ApprovalCliTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private const string Password = "correct horse battery";

    private async Task<(ApexCli Cli, ApexClient Api)> SignedInAsync(CancellationToken ct)
    {
        var email = $"cli-approval-{Guid.NewGuid():N}@example.com";
        var api = await shared.Server.NewUserAsync(email);
        await api.CreateAgentAsync(ApprovalTests.Gated, ct);
        var cli = new ApexCli(shared.Server.BaseAddress);
        var login = await cli.RunAsync(["login", "--email", email, "--password-stdin"], Password + "\n", ct);
        Assert.True(login.ExitCode == 0, login.ToString());
        return (cli, api);
    }

    [Fact]
    public async Task AskShowsTheRequestAndAYesOnStdinApprovesItAndTheRunCompletes()
    {
        var ct = Waits.Timeout();
        var (cli, api) = await SignedInAsync(ct);
        using var _ = cli;
        using var __ = api;
        var result = await cli.RunAsync(["ask", "what did my calls cost?", "--agent", "gated"], "y\n", ct);
        Assert.True(result.ExitCode == 0, result.ToString());
        var lines = result.Lines.Select(l => l.Trim()).ToList();
        var asked = lines.FindIndex(l => l.StartsWith("⏸ cost_breakdown waits for approval", StringComparison.Ordinal));
        var approved = lines.FindIndex(l => l.StartsWith("⏵ cost_breakdown approved", StringComparison.Ordinal));
        var ran = lines.FindIndex(l => l.StartsWith("✓ cost_breakdown ok", StringComparison.Ordinal));
        Assert.True(asked >= 0 && approved > asked && ran > approved, result.ToString());
        Assert.Contains("Run cost_breakdown", result.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("✔ run_completed", lines[^1], StringComparison.Ordinal);
    }

    [Fact]
    public async Task AskLeftWithoutAnAnswerExitsWaitingAndRejectAnswersItLater()
    {
        var ct = Waits.Timeout();
        var (cli, api) = await SignedInAsync(ct);
        using var _ = cli;
        using var __ = api;
        var left = await cli.RunAsync(["ask", "what did my calls cost?", "--agent", "gated"], "", ct);
        Assert.True(left.ExitCode == 5, left.ToString());
        var ids = ApproveHint().Match(left.Stderr);
        Assert.True(ids.Success, left.ToString());
        var (runId, callId) = (ids.Groups[1].Value, ids.Groups[2].Value);
        Assert.Equal("waiting", (await api.GetRunAsync(runId, ct)).Status);
        // resume shows the request and does not wait for its answer.
        var resumed = await cli.RunAsync(["resume", (await api.GetRunAsync(runId, ct)).ThreadId, "--after", "0"], null, ct);
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        Assert.Contains(resumed.Lines, l => l.Trim().StartsWith("⏸ cost_breakdown waits for approval", StringComparison.Ordinal));

        var rejected = await cli.RunAsync(["reject", runId, callId, "--reason", "not this month"], null, ct);
        Assert.True(rejected.ExitCode == 0, rejected.ToString());
        Assert.Contains("cost_breakdown rejected", rejected.Stdout, StringComparison.Ordinal);
        var run = await api.GetRunAsync(runId, ct);
        Assert.IsType<RunCompleted>(await api.TerminalEventAsync(run.ThreadId, runId, ct));
        Assert.Equal(("rejected", "not this month"), (Assert.Single(await api.ListApprovalsAsync(runId, ct)).Status, (await api.ListApprovalsAsync(runId, ct))[0].Reason));

        // Answered once: a second answer is an error, and an unknown call is not found.
        Assert.NotEqual(0, (await cli.RunAsync(["approve", runId, callId], null, ct)).ExitCode);
        var unknown = await cli.RunAsync(["approve", runId, "call_nope"], null, ct);
        Assert.Contains("No tool call of yours waits for approval", unknown.Stderr, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"apex approve (\S+) (\S+)`")]
    private static partial Regex ApproveHint();
}
