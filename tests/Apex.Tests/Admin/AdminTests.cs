using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using Apex.Client;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Admin;

/// <summary>One server whose first admin comes from settings, with the scripted model (<c>[slow]</c> runs a 10-second tool).</summary>
public sealed class AdminServer : IAsyncLifetime
{
    public const string AdminEmail = "root@example.com";

    public ApexTestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Server = await ApexTestServer.StartAsync(new() { ["Apex:Auth:Admins:0"] = AdminEmail }, ScriptedChatClient.Register);

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

/// <summary>Roles, the admin API and the audit trail (issue 11, "what to add" 1 and 2).</summary>
public sealed class AdminTests(AdminServer fixture) : IClassFixture<AdminServer>
{
    private ApexTestServer Server => fixture.Server;

    private async Task<ApexClient> AdminAsync()
    {
        var client = Server.CreateClient();
        try
        {
            await client.RegisterAsync(AdminServer.AdminEmail, "correct horse battery");
        }
        catch (ApexApiException ex) when (ex.Status == HttpStatusCode.Conflict)
        {
            await client.LoginAsync(AdminServer.AdminEmail, "correct horse battery");
        }
        return client;
    }

    private static async Task<T> SendAsync<T>(ApexClient client, HttpMethod method, string path, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, HttpContent? body = null)
    {
        using var response = await client.Http.SendAsync(client.Authorized(method, path, body));
        if (!response.IsSuccessStatusCode) throw new ApexApiException(response.StatusCode, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync(type))!;
    }

    private static Task<AdminUserDto> PatchAsync(ApexClient admin, string userId, AdminUserUpdate update) =>
        SendAsync(admin, HttpMethod.Patch, $"api/admin/users/{userId}", ApexJsonContext.Default.AdminUserDto, JsonContent.Create(update, ApexJsonContext.Default.AdminUserUpdate));

    [Fact]
    public async Task EveryAdminRouteIs403ToAUserAnd401ToNoOne()
    {
        using var user = await Server.NewUserAsync();
        using var anonymous = Server.CreateClient();
        var routes = new (HttpMethod, string)[]
        {
            (HttpMethod.Get, "api/admin/users"), (HttpMethod.Get, $"api/admin/users/{user.Tokens!.User.Id}"), (HttpMethod.Patch, $"api/admin/users/{user.Tokens.User.Id}"),
            (HttpMethod.Post, $"api/admin/users/{user.Tokens.User.Id}/revoke-sessions"), (HttpMethod.Get, "api/admin/runs"), (HttpMethod.Post, "api/admin/runs/x/cancel"),
            (HttpMethod.Get, "api/admin/usage"), (HttpMethod.Get, "api/admin/audit"),
        };
        foreach (var (method, path) in routes)
        {
            using var asUser = await user.Http.SendAsync(user.Authorized(method, path, JsonContent.Create(new AdminUserUpdate(Tier: "enterprise"), ApexJsonContext.Default.AdminUserUpdate)));
            Assert.True(asUser.StatusCode == HttpStatusCode.Forbidden, $"{method} {path}: {asUser.StatusCode}");
            using var asNobody = await anonymous.Http.SendAsync(anonymous.Authorized(method, path));
            Assert.True(asNobody.StatusCode == HttpStatusCode.Unauthorized, $"{method} {path}: {asNobody.StatusCode}");
        }
        Assert.Equal("free", (await user.MeAsync()).Tier);
    }

    [Fact]
    public async Task AnAdminFindsAUserChangesTheirTierAndTheChangeAppliesAtOnceAndIsAudited()
    {
        using var admin = await AdminAsync();
        var email = $"find-{Guid.NewGuid():N}@example.com";
        using var user = await Server.NewUserAsync(email);
        var found = Assert.Single((await SendAsync(admin, HttpMethod.Get, $"api/admin/users?q={email[..20]}", ApexJsonContext.Default.PageAdminUserDto)).Items);
        Assert.Equal((user.Tokens!.User.Id, "user", "free"), (found.Id, found.Role, found.Tier));

        Assert.Equal("pro", (await PatchAsync(admin, found.Id, new AdminUserUpdate(Tier: "pro"))).Tier);
        // The user's existing access token now carries pro: the tier is read from the account, not the token.
        Assert.Equal("pro", (await SendAsync(user, HttpMethod.Get, "api/usage", ApexJsonContext.Default.UsageDto)).Tier);

        var audit = await SendAsync(admin, HttpMethod.Get, $"api/admin/audit?user_id={found.Id}", ApexJsonContext.Default.PageAuditEntryDto);
        var change = Assert.Single(audit.Items, e => e.Kind == SecurityEventKinds.TierChanged);
        Assert.Equal((admin.Tokens!.User.Id, "free -> pro"), (change.ActorId, change.Detail));
        Assert.Contains(audit.Items, e => e.Kind == SecurityEventKinds.Register);
        // Uploading and deleting data are on the trail too.
        using (var sample = await user.Http.SendAsync(user.Authorized(HttpMethod.Post, "api/workloads/sample",
            JsonContent.Create(new SampleWorkloadRequest(Days: 1, CallsPerDay: 10), ApexJsonContext.Default.SampleWorkloadRequest)))) sample.EnsureSuccessStatusCode();
        using (var delete = await user.Http.SendAsync(user.Authorized(HttpMethod.Delete, "api/workloads"))) delete.EnsureSuccessStatusCode();
        var kinds = (await user.ListSecurityEventsAsync()).Items.Select(e => e.Kind).ToList();
        Assert.Contains(SecurityEventKinds.WorkloadUploaded, kinds);
        Assert.Contains(SecurityEventKinds.WorkloadDeleted, kinds);
        // The user sees the same entry among their own security events.
        Assert.Contains((await user.ListSecurityEventsAsync()).Items, e => e.Kind == SecurityEventKinds.TierChanged);
        // An admin cannot demote themselves.
        Assert.Equal(HttpStatusCode.Conflict, (await Assert.ThrowsAsync<ApexApiException>(() => PatchAsync(admin, admin.Tokens.User.Id, new AdminUserUpdate(Role: "user")))).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await Assert.ThrowsAsync<ApexApiException>(() => PatchAsync(admin, found.Id, new AdminUserUpdate(Tier: "platinum")))).Status);
    }

    [Fact]
    public async Task LockingAUserClosesTheirSocketAndRefusesTheirSignInUntilUnlocked()
    {
        var ct = Waits.Timeout();
        using var admin = await AdminAsync();
        var email = $"lock-{Guid.NewGuid():N}@example.com";
        using var user = await Server.NewUserAsync(email);
        using var socket = await user.ConnectAsync(ct);

        await PatchAsync(admin, user.Tokens!.User.Id, new AdminUserUpdate(Locked: true));

        Assert.Null(await socket.ReceiveAsync(ct));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.Socket.CloseStatus);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => user.MeAsync(ct))).Status);
        Assert.Equal(HttpStatusCode.Locked, (await Assert.ThrowsAsync<ApexApiException>(() => Server.CreateClient().LoginAsync(email, "correct horse battery", ct))).Status);

        await PatchAsync(admin, user.Tokens.User.Id, new AdminUserUpdate(Locked: false));
        using var again = Server.CreateClient();
        await again.LoginAsync(email, "correct horse battery", ct);
        Assert.Equal(email, (await again.MeAsync(ct)).Email);
    }

    [Fact]
    public async Task RevokingSessionsSignsTheUserOutEverywhere()
    {
        using var admin = await AdminAsync();
        using var user = await Server.NewUserAsync();
        var key = await user.CreateApiKeyAsync("bot");
        var revoked = await SendAsync(admin, HttpMethod.Post, $"api/admin/users/{user.Tokens!.User.Id}/revoke-sessions", ApexJsonContext.Default.RevokedSessionsDto);
        Assert.Equal(2, revoked.Revoked);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => user.MeAsync())).Status);
        using var program = Server.CreateClient();
        program.UseApiKey(key.Key);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => program.MeAsync())).Status);
    }

    [Fact]
    public async Task AnAdminSeesAnyUsersRunningRunAndCancelsIt()
    {
        var ct = Waits.Timeout();
        using var admin = await AdminAsync();
        using var user = await Server.NewUserAsync();
        using var socket = await user.ConnectAsync(ct);
        await socket.SendMessageAsync("[slow] how much do I spend?", cancellationToken: ct);
        var executing = (ToolExecuting)(await socket.ReceiveUntilAsync(e => e is ToolExecuting { Data.Tool: "sleep" }, ct))[^1];

        var running = await SendAsync(admin, HttpMethod.Get, "api/admin/runs?status=running", ApexJsonContext.Default.PageAdminRunDto);
        var listed = Assert.Single(running.Items, r => r.Id == executing.RunId);
        Assert.Equal(user.Tokens!.User.Id, listed.UserId);
        // Its lease is being renewed: it is not stuck.
        Assert.DoesNotContain((await SendAsync(admin, HttpMethod.Get, "api/admin/runs?stuck=true", ApexJsonContext.Default.PageAdminRunDto)).Items, r => r.Id == executing.RunId);

        await SendAsync(admin, HttpMethod.Post, $"api/admin/runs/{executing.RunId}/cancel", ApexJsonContext.Default.RunDto);
        var cancelled = Assert.IsType<RunCancelled>((await socket.ReceiveUntilAsync(e => e.IsTerminal, ct))[^1]);
        Assert.Equal("cancelled_by_admin", cancelled.Data.Reason);
        var audit = await SendAsync(admin, HttpMethod.Get, $"api/admin/audit?kind={SecurityEventKinds.RunCancelled}", ApexJsonContext.Default.PageAuditEntryDto);
        Assert.Contains(audit.Items, e => e.Detail == executing.RunId && e.UserId == user.Tokens.User.Id);
        Assert.Equal(HttpStatusCode.NotFound, (await Assert.ThrowsAsync<ApexApiException>(() =>
            SendAsync(admin, HttpMethod.Post, "api/admin/runs/no-such-run/cancel", ApexJsonContext.Default.RunDto))).Status);
    }

    [Fact]
    public async Task ABudgetOverrideEndsTheNextRunBudgetExceededWithEverythingClosedAndUsageShowsIt()
    {
        var ct = Waits.Timeout();
        using var admin = await AdminAsync();
        using var user = await Server.NewUserAsync();
        using var socket = await user.ConnectAsync(ct);
        // A first run uses some tokens (the built-in model counts them), unlimited by default.
        Assert.IsType<RunCompleted>((await socket.RunToEndAsync("How can I cut my LLM cost?", cancellationToken: ct))[^1]);
        var before = (await SendAsync(user, HttpMethod.Get, "api/usage", ApexJsonContext.Default.UsageDto)).Budget!;
        Assert.Null(before.MonthlyTokens);
        Assert.True(before.TokensUsed > 0);

        // The admin caps the month at what is already used: the next run's first model call is refused.
        await PatchAsync(admin, user.Tokens!.User.Id, new AdminUserUpdate(TokenBudget: before.TokensUsed));
        var events = await socket.RunToEndAsync("How can I cut my LLM cost?", cancellationToken: ct);
        var failed = Assert.IsType<RunFailed>(events[^1]);
        Assert.Equal("budget_exceeded", failed.Data.Reason);
        Assert.Contains("budget", failed.Data.Message, StringComparison.Ordinal);
        // Everything the run opened was closed before its terminal event.
        var started = events.OfType<AgentStarted>().Select(e => e.Data.Agent).ToList();
        Assert.Equal(started.Order(), events.OfType<AgentCompleted>().Select(e => e.Data.Agent).Order());
        var after = (await SendAsync(user, HttpMethod.Get, "api/usage", ApexJsonContext.Default.UsageDto)).Budget!;
        Assert.Equal((before.TokensUsed, 0L), (after.MonthlyTokens!.Value, after.TokensRemaining!.Value));

        // Back to the tier's budget (unlimited): runs complete again.
        await PatchAsync(admin, user.Tokens.User.Id, new AdminUserUpdate(ClearBudget: true));
        Assert.IsType<RunCompleted>((await socket.RunToEndAsync("How can I cut my LLM cost?", cancellationToken: ct))[^1]);
        var usage = await SendAsync(admin, HttpMethod.Get, "api/admin/usage?days=1", ApexJsonContext.Default.PageUserUsageDto);
        Assert.Contains(usage.Items, u => u.UserId == user.Tokens.User.Id && u.Tokens > before.TokensUsed);
    }
}

/// <summary>A tier budget from settings.</summary>
public sealed class TierBudgetTests
{
    [Fact]
    public async Task AFreeTiersMonthlyTokenBudgetFromSettingsStopsRunsOnceUsedUp()
    {
        var ct = Waits.Timeout();
        await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Budgets:Free:MonthlyTokens"] = "1" });
        using var user = await server.NewUserAsync();
        using var socket = await user.ConnectAsync(ct);
        // The first model call is within budget (nothing used yet); the calls after it are not.
        var failed = Assert.IsType<RunFailed>((await socket.RunToEndAsync("How can I cut my LLM cost?", cancellationToken: ct))[^1]);
        Assert.Equal("budget_exceeded", failed.Data.Reason);
        using var response = await user.Http.SendAsync(user.Authorized(HttpMethod.Get, "api/usage"), ct);
        var budget = (await response.Content.ReadFromJsonAsync(ApexJsonContext.Default.UsageDto, ct))!.Budget!;
        Assert.Equal((1L, 0L), (budget.MonthlyTokens!.Value, budget.TokensRemaining!.Value));
        Assert.True(budget.TokensUsed >= 1);
    }
}
