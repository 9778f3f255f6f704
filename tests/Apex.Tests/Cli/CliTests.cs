using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Cli;

/// <summary>The <c>apex</c> command run as a real process against one real server (scripted model: <c>[slow]</c> runs a 10-second tool).</summary>
// File modes and SIGINT (sent with /bin/kill) are what these tests check: POSIX only.
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class CliTests(ScriptedServer scripted) : IClassFixture<ScriptedServer>
{
    private const string Password = "correct horse battery";
    private const UnixFileMode OwnerReadWrite = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private ApexTestServer Server => scripted.Server;

    [Fact]
    public async Task AskShowsTheTeamsStepsLiveThenTheAnswerAndExitsZero()
    {
        using var user = await SignedInAsync();
        var (cli, api) = (user.Cli, user.Api);

        var result = await cli.RunAsync("ask", "How can I cut my LLM costs?");

        Assert.True(result.ExitCode == 0, result.ToString());
        var thread = Assert.Single((await api.ListThreadsAsync()).Items);
        var answer = (await api.ListMessagesAsync(thread.Id)).Items.Single(m => m.Role == "assistant").Content.Trim();
        var lines = result.Lines.Select(l => l.Trim()).ToList();
        var triage = lines.IndexOf("▶ triage");
        Assert.True(triage >= 0, result.ToString());
        Assert.Contains(lines, l => l.StartsWith("… ", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("⚙ workload_summary", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("✓ workload_summary ok", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("■ triage ok", StringComparison.Ordinal));
        // The steps come first, the answer after them, the run's end last; no terminal escapes in a pipe.
        var stdout = result.Stdout.ReplaceLineEndings("\n");
        var answerAt = stdout.IndexOf(answer, StringComparison.Ordinal);
        Assert.True(answerAt > stdout.IndexOf("▶ triage", StringComparison.Ordinal), result.ToString());
        Assert.StartsWith("✔ run_completed", lines[^1], StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b[", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UploadShowsTheReportAndStrictExitsNonZeroWhenARowIsRejected()
    {
        using var user = await SignedInAsync();
        var (cli, api) = (user.Cli, user.Api);
        var csv = Path.Combine(Path.GetDirectoryName(cli.ConfigDir)!, "usage.csv");
        await File.WriteAllTextAsync(csv, """
            timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,status
            2026-11-01T10:00:00Z,openai,gpt-4o,100,50,300,ok
            2026-11-01T10:01:00Z,openai,gpt-4o,abc,50,300,ok
            """);

        var strict = await cli.RunAsync("upload", csv, "--strict");
        Assert.True(strict.ExitCode == 1, strict.ToString());
        Assert.Contains("nothing imported, 1 rejected", strict.Stdout, StringComparison.Ordinal);
        Assert.Contains("prompt_tokens 'abc' is not a non-negative integer", strict.Stdout, StringComparison.Ordinal);
        Assert.Contains("Rows rejected", strict.Stderr, StringComparison.Ordinal);
        Assert.Equal(0, (await SummaryAsync(api)).Calls);

        var lenient = await cli.RunAsync("upload", csv);
        Assert.True(lenient.ExitCode == 0, lenient.ToString());
        Assert.Contains("1 row(s) stored, 1 rejected", lenient.Stdout, StringComparison.Ordinal);
        Assert.Contains(lenient.Lines, l => l.Contains("│ 3 ", StringComparison.Ordinal) && l.Contains("prompt_tokens", StringComparison.Ordinal));
        Assert.Equal(1, (await SummaryAsync(api)).Calls);

        var json = await cli.RunAsync("upload", csv, "--json");
        Assert.True(json.ExitCode == 0, json.ToString());
        var report = JsonSerializer.Deserialize(json.Stdout, ApexJsonContext.Default.WorkloadReport)!;
        Assert.Equal((1, 1), (report.RowsAccepted, report.RowsRejected));
        Assert.Equal(3, Assert.Single(report.Errors).Line);
        Assert.Equal(2, (await SummaryAsync(api)).Calls);
    }

    [Fact]
    public async Task CtrlCDuringASlowRunCancelsItOnTheServerAndExits130()
    {
        var ct = Waits.Timeout();
        using var user = await SignedInAsync();
        var (cli, api) = (user.Cli, user.Api);

        using var running = cli.Start("ask", "[slow] how much do I spend?", "--json");
        var line = await running.LineAsync(l => l.Contains("\"type\":\"tool_executing\"", StringComparison.Ordinal) && l.Contains("\"tool\":\"sleep\"", StringComparison.Ordinal), ct);
        var executing = Assert.IsType<ToolExecuting>(JsonSerializer.Deserialize(line, ApexJsonContext.Default.ApexEvent));
        await running.InterruptAsync(ct);
        var result = await running.WaitAsync(ct);

        Assert.True(result.ExitCode == 130, result.ToString());
        // Every line of --json output is an event.
        var events = result.Lines.Select(l => JsonSerializer.Deserialize(l, ApexJsonContext.Default.ApexEvent)!).ToList();
        var cancelled = Assert.IsType<RunCancelled>(events[^1]);
        Assert.Equal("cancelled_by_user", cancelled.Data.Reason);
        Assert.Contains(events, e => e is ToolCompleted { Data: { Tool: "sleep", Status: "cancelled" } });
        Assert.Equal("cancelled", (await api.GetRunAsync(executing.RunId!, ct)).Status);
    }

    [Fact]
    public async Task LoginStoresTheSessionInA0600FileInA0700FolderAndJsonOutputParses()
    {
        var email = $"cli-{Guid.NewGuid():N}@example.com";
        using var api = await Server.NewUserAsync(email);
        using var cli = new ApexCli(Server.BaseAddress);

        var login = await cli.RunAsync(["login", "--email", email, "--password-stdin", "--json"], Password + "\n", Waits.Timeout());

        Assert.True(login.ExitCode == 0, login.ToString());
        using (var json = JsonDocument.Parse(login.Stdout))
        {
            Assert.Equal(email, json.RootElement.GetProperty("user").GetProperty("email").GetString());
            Assert.Equal("password", json.RootElement.GetProperty("method").GetString());
        }
        var file = Path.Combine(cli.ConfigDir, "credentials.json");
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(file));
        Assert.Equal(OwnerReadWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(cli.ConfigDir));
        await api.CreateThreadAsync("from the API");
        var threads = await cli.RunAsync("threads", "--json");
        Assert.True(threads.ExitCode == 0, threads.ToString());
        Assert.Equal("from the API", Assert.Single(JsonSerializer.Deserialize(threads.Stdout, ApexJsonContext.Default.PageThreadDto)!.Items).Title);
    }

    [Fact]
    public async Task AnExpiredAccessTokenIsRefreshedAndTheRotatedRefreshTokenIsWrittenBack()
    {
        using var user = await SignedInAsync();
        var (cli, api) = (user.Cli, user.Api);
        var file = Path.Combine(cli.ConfigDir, "credentials.json");
        var stored = JsonNode.Parse(await File.ReadAllTextAsync(file))!;
        var spent = JsonSerializer.Deserialize(stored["tokens"]!.ToJsonString(), ApexJsonContext.Default.TokenResponse)!;
        stored["access_token_expires_at"] = DateTimeOffset.UtcNow.AddMinutes(-1).ToString("O");
        await File.WriteAllTextAsync(file, stored.ToJsonString());

        var threads = await cli.RunAsync("threads", "--json");

        Assert.True(threads.ExitCode == 0, threads.ToString());
        var rotated = JsonNode.Parse(await File.ReadAllTextAsync(file))!["tokens"]!["refresh_token"]!.GetValue<string>();
        Assert.NotEqual(spent.RefreshToken, rotated);
        Assert.Equal(OwnerReadWrite, File.GetUnixFileMode(file));
        // The server rotated it too: the old refresh token is spent.
        using var old = Server.CreateClient();
        old.SignIn(spent);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, Assert.IsType<ApexApiException>(await Record.ExceptionAsync(() => old.RefreshAsync())).Status);
    }

    [Fact]
    public async Task KeysCreatedWithTheCliSignInAnotherCliAndDeletingOneSignsItOut()
    {
        using var user = await SignedInAsync();
        var created = await user.Cli.RunAsync("keys", "create", "ci", "--json");
        Assert.True(created.ExitCode == 0, created.ToString());
        var key = JsonSerializer.Deserialize(created.Stdout, ApexJsonContext.Default.CreatedApiKeyDto)!;
        Assert.StartsWith("apex_", key.Key, StringComparison.Ordinal);

        using var program = new ApexCli(Server.BaseAddress);
        var login = await program.RunAsync("login", "--api-key", key.Key);
        Assert.True(login.ExitCode == 0, login.ToString());
        var threads = await program.RunAsync("threads", "--json");
        Assert.True(threads.ExitCode == 0, threads.ToString());

        var listed = await user.Cli.RunAsync("keys", "--json");
        Assert.Equal(key.Id, Assert.Single(JsonSerializer.Deserialize(listed.Stdout, ApexJsonContext.Default.PageApiKeyDto)!.Items).Id);
        var deleted = await user.Cli.RunAsync("keys", "delete", key.Id);
        Assert.True(deleted.ExitCode == 0, deleted.ToString());
        Assert.NotEqual(0, (await program.RunAsync("threads", "--json")).ExitCode);
    }

    [Fact]
    public async Task AnApiKeyTheServerRefusesIsNotStored()
    {
        using var cli = new ApexCli(Server.BaseAddress);

        var login = await cli.RunAsync("login", "--api-key", "apex_not_a_key");

        Assert.True(login.ExitCode == 1, login.ToString());
        Assert.Contains("refused the API key", login.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(cli.ConfigDir, "credentials.json")));
    }

    [Fact]
    public async Task ResumeShowsExactlyTheEventsMissedSinceTheLastCommandThenNothing()
    {
        var ct = Waits.Timeout();
        using var user = await SignedInAsync();
        var (cli, api) = (user.Cli, user.Api);
        Assert.Equal(0, (await cli.RunAsync("ask", "hello")).ExitCode);
        var thread = Assert.Single((await api.ListThreadsAsync(cancellationToken: ct)).Items);

        // A run the CLI did not watch, e.g. one sent from another device.
        using var socket = await api.ConnectAsync(ct);
        var missed = await socket.RunToEndAsync("How can I cut my LLM costs?", thread.Id, ct);

        var resumed = await cli.RunAsync("resume", thread.Id, "--json");
        Assert.True(resumed.ExitCode == 0, resumed.ToString());
        var events = resumed.Lines.Select(l => JsonSerializer.Deserialize(l, ApexJsonContext.Default.ApexEvent)!).ToList();
        Assert.Equal(missed.Select(e => e.Seq), events.Select(e => e.Seq));
        Assert.Equal(thread.LastSeq + 1, events[0].Seq);
        Assert.IsType<RunCompleted>(events[^1]);

        var again = await cli.RunAsync("resume", thread.Id, "--json");
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Empty(again.Lines);
    }

    [Fact]
    public async Task ChatKeepsOneThreadAcrossTurnsUntilQuit()
    {
        using var user = await SignedInAsync();
        var (cli, api) = (user.Cli, user.Api);

        var chat = await cli.RunAsync(["chat"], "hello\nHow can I cut my LLM costs?\n/quit\nnot sent\n", Waits.Timeout());

        Assert.True(chat.ExitCode == 0, chat.ToString());
        var thread = Assert.Single((await api.ListThreadsAsync()).Items);
        var messages = (await api.ListMessagesAsync(thread.Id)).Items;
        Assert.Equal(["user", "assistant", "user", "assistant"], messages.Select(m => m.Role));
        Assert.Equal(2, chat.Lines.Count(l => l.StartsWith("✔ run_completed", StringComparison.Ordinal)));
    }

    /// <summary>A new user, signed in both through the API (for checks) and through <c>apex login</c> in its own config folder.</summary>
    private async Task<SignedIn> SignedInAsync()
    {
        var email = $"cli-{Guid.NewGuid():N}@example.com";
        var user = new SignedIn(new ApexCli(Server.BaseAddress), await Server.NewUserAsync(email));
        var login = await user.Cli.RunAsync(["login", "--email", email, "--password-stdin"], Password + "\n", Waits.Timeout());
        Assert.True(login.ExitCode == 0, login.ToString());
        return user;
    }

    private sealed record SignedIn(ApexCli Cli, ApexClient Api) : IDisposable
    {
        public void Dispose()
        {
            Cli.Dispose();
            Api.Dispose();
        }
    }

    private static async Task<WorkloadSummaryDto> SummaryAsync(ApexClient api)
    {
        using var request = api.Authorized(HttpMethod.Get, "api/workloads");
        using var response = await api.Http.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.WorkloadSummaryDto))!;
    }
}
