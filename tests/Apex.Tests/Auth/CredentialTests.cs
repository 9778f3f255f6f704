using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using Apex.Client;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.DependencyInjection;

namespace Apex.Tests.Auth;

/// <summary>API keys, and open streams that end with the credential that opened them (issue 11, defect 1; issue 13, part 1).</summary>
public sealed class CredentialTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApexTestServer Server => shared.Server;

    [Fact]
    public async Task AnApiKeyWorksWhereverAnAccessTokenDoesAndItsUseIsVisible()
    {
        var ct = Waits.Timeout();
        using var owner = await Server.NewUserAsync();
        var created = await owner.CreateApiKeyAsync("ci", cancellationToken: ct);
        Assert.StartsWith("apex_", created.Key, StringComparison.Ordinal);
        Assert.StartsWith(created.Prefix, created.Key, StringComparison.Ordinal);

        using var program = Server.CreateClient();
        program.UseApiKey(created.Key);
        Assert.Equal(owner.Tokens!.User.Id, (await program.MeAsync(ct)).Id);
        // REST, a ticket for /ws, the socket itself with the key as its bearer header, and SSE.
        using (var socket = await program.ConnectAsync(ct))
        {
            var events = await socket.RunToEndAsync("How can I cut my LLM cost?", cancellationToken: ct);
            Assert.IsType<RunCompleted>(events[^1]);
            var threadId = events[0].ThreadId!;
            var replayed = new List<ApexEvent>();
            await foreach (var evt in program.StreamEventsAsync(threadId, cancellationToken: ct))
            {
                replayed.Add(evt);
                if (evt.IsTerminal) break;
            }
            Assert.Equal(events.Select(e => e.Seq), replayed.Select(e => e.Seq));
        }
        using (var bearer = new ClientWebSocket())
        {
            bearer.Options.SetRequestHeader("Authorization", "Bearer " + created.Key);
            await bearer.ConnectAsync(new Uri(new Uri(Server.BaseAddress.ToString().Replace("http", "ws", StringComparison.Ordinal)), "ws"), ct);
            using var apex = new ApexSocket(bearer);
            Assert.IsType<ConnectionEstablished>(await apex.ReceiveAsync(ct));
        }

        // The MCP door takes it too.
        using (var mcp = program.Authorized(HttpMethod.Post, "mcp", new StringContent("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""", System.Text.Encoding.UTF8, "application/json")))
        {
            mcp.Headers.Accept.ParseAdd("application/json");
            mcp.Headers.Accept.ParseAdd("text/event-stream");
            using var tools = await program.Http.SendAsync(mcp, ct);
            Assert.Equal(HttpStatusCode.OK, tools.StatusCode);
            Assert.Contains("ask_apex", await tools.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }

        // Listed without its secret, with its last use; the account's security events say what happened.
        var listed = Assert.Single((await owner.ListApiKeysAsync(ct)).Items);
        Assert.Equal((created.Id, "ci", created.Prefix), (listed.Id, listed.Name, listed.Prefix));
        Assert.NotNull(listed.LastUsedAt);
        var kinds = (await owner.ListSecurityEventsAsync(cancellationToken: ct)).Items.Select(e => e.Kind).ToList();
        Assert.Contains(SecurityEventKinds.ApiKeyCreated, kinds);
        Assert.Contains(SecurityEventKinds.ApiKeyUsed, kinds);
        Assert.Equal(1, kinds.Count(k => k == SecurityEventKinds.ApiKeyUsed));

        // A key cannot mint keys; another user cannot see or delete it; deleting it stops it at once.
        Assert.Equal(HttpStatusCode.Forbidden, (await Assert.ThrowsAsync<ApexApiException>(() => program.CreateApiKeyAsync("more", cancellationToken: ct))).Status);
        using var stranger = await Server.NewUserAsync();
        Assert.Empty((await stranger.ListApiKeysAsync(ct)).Items);
        Assert.Equal(HttpStatusCode.NotFound, (await Assert.ThrowsAsync<ApexApiException>(() => stranger.DeleteApiKeyAsync(created.Id, ct))).Status);
        Assert.Equal(owner.Tokens.User.Id, (await program.MeAsync(ct)).Id);
        await owner.DeleteApiKeyAsync(created.Id, ct);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => program.MeAsync(ct))).Status);
        Assert.Empty((await owner.ListApiKeysAsync(ct)).Items);
        // A key's session row can never be refreshed, whatever is presented.
        using var refresher = Server.CreateClient();
        refresher.SignIn(owner.Tokens with { RefreshToken = "api_key:" + created.Id });
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => refresher.RefreshAsync(ct))).Status);
    }

    [Fact]
    public async Task BadKeyRequestsAreRefusedClearly()
    {
        var ct = Waits.Timeout();
        using var owner = await Server.NewUserAsync();
        Assert.Equal(HttpStatusCode.BadRequest, (await Assert.ThrowsAsync<ApexApiException>(() => owner.CreateApiKeyAsync(" ", cancellationToken: ct))).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await Assert.ThrowsAsync<ApexApiException>(() => owner.CreateApiKeyAsync("old", DateTimeOffset.UtcNow.AddMinutes(-1), ct))).Status);
        using var forged = Server.CreateClient();
        forged.UseApiKey("apex_not-a-key");
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => forged.MeAsync(ct))).Status);
    }

    [Fact]
    public async Task LogoutClosesTheSessionsOpenSocketAndSseStream()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var socket = await client.ConnectAsync(ct);
        var events = await socket.RunToEndAsync("Hello", cancellationToken: ct);
        var threadId = events[0].ThreadId!;
        // The stream is watched once its headers arrive.
        using var sse = await Sse.OpenAsync(client, threadId, events[^1].Seq, ct);
        Assert.Equal(HttpStatusCode.OK, sse.StatusCode);

        await client.LogoutAsync(ct);

        Assert.Null(await socket.ReceiveAsync(ct));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.Socket.CloseStatus);
        Assert.Equal("session revoked", socket.Socket.CloseStatusDescription);
        var after = await Sse.ReadToEndAsync(sse, ct);
        Assert.Equal("session_revoked", Assert.IsType<ErrorFrame>(Assert.Single(after)).Data.Code);
    }

    [Fact]
    public async Task ReusingARotatedRefreshTokenClosesTheSessionsSocket()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var stolen = client.Tokens!.RefreshToken;
        await client.RefreshAsync(ct);
        using var socket = await client.ConnectAsync(ct);
        using var thief = Server.CreateClient();
        thief.SignIn(client.Tokens! with { RefreshToken = stolen });
        await Assert.ThrowsAsync<ApexApiException>(() => thief.RefreshAsync(ct));

        Assert.Null(await socket.ReceiveAsync(ct));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.Socket.CloseStatus);
        Assert.Contains(SecurityEventKinds.RefreshReuse, await KindsAsync(client.Tokens!.User.Id, ct));
    }

    [Fact]
    public async Task DeletingAnApiKeyClosesWhatItOpened()
    {
        var ct = Waits.Timeout();
        using var owner = await Server.NewUserAsync();
        var key = await owner.CreateApiKeyAsync("bot", cancellationToken: ct);
        using var program = Server.CreateClient();
        program.UseApiKey(key.Key);
        using var socket = await program.ConnectAsync(ct);
        // Signing in elsewhere does not touch the key's socket; deleting the key does.
        using var other = await Server.NewUserAsync();
        await other.LogoutAsync(ct);
        await owner.DeleteApiKeyAsync(key.Id, ct);
        Assert.Null(await socket.ReceiveAsync(ct));
        Assert.Equal("session revoked", socket.Socket.CloseStatusDescription);
    }

    [Fact]
    public async Task ParallelWrongPasswordsCheckNoMoreThanTheLockoutAllows()
    {
        var ct = Waits.Timeout();
        using var victim = await Server.NewUserAsync();
        var email = (await victim.MeAsync(ct)).Email;
        var answers = await Task.WhenAll(Enumerable.Range(0, 20).Select(async i =>
        {
            using var attacker = Server.CreateClient();
            try
            {
                await attacker.LoginAsync(email, $"guess {i}", ct);
                return HttpStatusCode.OK;
            }
            catch (ApexApiException ex)
            {
                return ex.Status;
            }
        }));
        // The limit is 5: five passwords were checked (401), every other attempt was refused unchecked (423).
        Assert.Equal(5, answers.Count(a => a == HttpStatusCode.Unauthorized));
        Assert.Equal(15, answers.Count(a => a == HttpStatusCode.Locked));
        Assert.Equal(HttpStatusCode.Locked, (await Assert.ThrowsAsync<ApexApiException>(() => Server.CreateClient().LoginAsync(email, "correct horse battery", ct))).Status);
        Assert.Equal(5, (await KindsAsync(victim.Tokens!.User.Id, ct)).Count(k => k == SecurityEventKinds.LoginFailed));
    }

    private async Task<List<string>> KindsAsync(string userId, CancellationToken ct) =>
        [.. (await Server.Services.GetRequiredService<IAccountStore>().ListSecurityEventsAsync(userId, 100, null, ct)).Select(e => e.Kind)];
}

/// <summary>Credentials that expire under open streams, and a sign-in that costs the same whether or not the account exists.</summary>
public sealed class CredentialExpiryTests
{
    [Fact]
    public async Task ASocketIsClosedWhenItsTokenExpiresUnlessItReauthenticates()
    {
        var ct = Waits.Timeout();
        await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Auth:AccessTokenLifetime"] = "00:00:02" });
        using var client = await server.NewUserAsync();
        var key = await client.CreateApiKeyAsync("long-lived", cancellationToken: ct);
        using var expiring = await client.ConnectAsync(ct);
        using var renewed = await client.ConnectAsync(ct);

        await renewed.SendAsync("reauth", new ReauthPayload(key.Key), ApexJsonContext.Default.ReauthPayload, ct);
        Assert.Null(Assert.IsType<Reauthenticated>(await renewed.ReceiveAsync(ct)).Data.ExpiresAt);
        await renewed.SendAsync("reauth", new ReauthPayload("apex_wrong"), ApexJsonContext.Default.ReauthPayload, ct);
        Assert.Equal("unauthorized", Assert.IsType<ErrorFrame>(await renewed.ReceiveAsync(ct)).Data.Code);

        Assert.Null(await expiring.ReceiveAsync(ct));
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, expiring.Socket.CloseStatus);
        Assert.StartsWith("token expired", expiring.Socket.CloseStatusDescription, StringComparison.Ordinal);

        // The socket that re-authenticated outlived the token it was opened with.
        await renewed.SendFrameAsync(new ClientFrame("ping"), ct);
        Assert.IsType<Pong>(await renewed.ReceiveAsync(ct));
    }

    [Fact]
    public async Task ARememberedTokenIsRefusedOnceItExpires()
    {
        var ct = Waits.Timeout();
        await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Auth:AccessTokenLifetime"] = "00:00:02" });
        using var client = await server.NewUserAsync();
        var expires = DateTimeOffset.UtcNow.AddSeconds(client.Tokens!.ExpiresIn);
        // Accepted while it lives (each use after the first skips the signature check), refused soon after its expiry.
        while (true)
        {
            try
            {
                await client.MeAsync(ct);
            }
            catch (ApexApiException refused) when (refused.Status == HttpStatusCode.Unauthorized)
            {
                break;
            }
            Assert.True(DateTimeOffset.UtcNow < expires.AddSeconds(3), "the token was still accepted 3 s after its expiry");
            await Task.Delay(100, ct);
        }
        Assert.True(DateTimeOffset.UtcNow >= expires.AddSeconds(-1), "the token was refused before its expiry");
    }

    [Fact]
    public async Task AnSseStreamEndsWhenItsTokenExpires()
    {
        var ct = Waits.Timeout();
        await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Auth:AccessTokenLifetime"] = "00:00:02" });
        using var client = await server.NewUserAsync();
        var thread = await client.CreateThreadAsync(cancellationToken: ct);
        using var sse = await Sse.OpenAsync(client, thread.Id, 0, ct);
        Assert.Equal(HttpStatusCode.OK, sse.StatusCode);
        Assert.Equal("token_expired", Assert.IsType<ErrorFrame>(Assert.Single(await Sse.ReadToEndAsync(sse, ct))).Data.Code);
    }

    [Fact]
    public async Task AnUnknownEmailIsCheckedAgainstAPasswordHashLikeAKnownOne()
    {
        var ct = Waits.Timeout();
        var hasher = new CountingHasher();
        await using var server = await ApexTestServer.StartAsync(services: s => s.AddSingleton<IPasswordHasher<UserRecord>>(hasher));
        using var known = await server.NewUserAsync();
        var email = (await known.MeAsync(ct)).Email;
        foreach (var (who, password) in new[] { (email, "wrong password"), ("nobody-" + email, "wrong password"), ("nobody-" + email, "") })
        {
            var before = hasher.Verifications;
            Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => server.CreateClient().LoginAsync(who, password, ct))).Status);
            Assert.Equal(before + 1, hasher.Verifications);
        }
    }

    private sealed class CountingHasher : IPasswordHasher<UserRecord>
    {
        private readonly PasswordHasher<UserRecord> _inner = new();
        private int _verifications;

        public int Verifications => Volatile.Read(ref _verifications);

        public string HashPassword(UserRecord user, string password) => _inner.HashPassword(user, password);

        public PasswordVerificationResult VerifyHashedPassword(UserRecord user, string hashedPassword, string providedPassword)
        {
            Interlocked.Increment(ref _verifications);
            return _inner.VerifyHashedPassword(user, hashedPassword, providedPassword);
        }
    }
}

/// <summary>Per-user caps, each refused with its own code before anything is created (issue 11, defect 5).</summary>
public sealed class CapTests
{
    [Fact]
    public async Task ThreadsFollowsAndSseStreamsAreCappedBeforeAnythingIsCreated()
    {
        var ct = Waits.Timeout();
        await using var server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Limits:MaxThreadsPerUser"] = "3",
            ["Apex:Limits:MaxFollowsPerConnection"] = "2",
            ["Apex:Limits:MaxSseStreamsPerUser"] = "2",
            ["Apex:Limits:MessagesPerMinutePerUser"] = "2",
        });
        using var client = await server.NewUserAsync();
        var threads = new List<string>();
        for (var i = 0; i < 3; i++) threads.Add((await client.CreateThreadAsync($"t{i}", cancellationToken: ct)).Id);
        var full = await Assert.ThrowsAsync<ApexApiException>(() => client.CreateThreadAsync("one too many", cancellationToken: ct));
        Assert.Equal(HttpStatusCode.Conflict, full.Status);
        Assert.Contains("thread_limit", full.Body, StringComparison.Ordinal);

        using var socket = await client.ConnectAsync(ct);
        // A message for a new thread when the user has no room for one: refused, nothing created.
        await socket.SendMessageAsync("Hello", cancellationToken: ct);
        Assert.Equal("thread_limit", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);
        Assert.Equal(3, (await client.ListThreadsAsync(cancellationToken: ct)).Items.Count);

        // Follows: two threads, then the third resume is refused.
        foreach (var id in threads.Take(2))
        {
            await socket.SendAsync("resume", new ResumePayload(id, 0), ApexJsonContext.Default.ResumePayload, ct);
            Assert.IsType<ThreadFollowed>(await socket.ReceiveAsync(ct));
        }
        await socket.SendAsync("resume", new ResumePayload(threads[2], 0), ApexJsonContext.Default.ResumePayload, ct);
        Assert.Equal("too_many_follows", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);
        await socket.SendMessageAsync("Hello", threads[2], cancellationToken: ct);
        Assert.Equal("too_many_follows", Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Data.Code);
        Assert.Empty((await client.ListRunsAsync(threads[2], cancellationToken: ct)).Items);

        // SSE streams: two open, the third refused; closing one makes room.
        var open = new List<HttpResponseMessage>();
        foreach (var id in threads.Take(2)) open.Add(await Sse.OpenAsync(client, id, 0, ct));
        Assert.All(open, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        using (var refused = await Sse.OpenAsync(client, threads[2], 0, ct))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            Assert.Contains("too_many_streams", await refused.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
        }
        open[0].Dispose();
        // The closed stream is released when the server sees its response end: retry until it has.
        HttpResponseMessage reopened;
        while ((reopened = await Sse.OpenAsync(client, threads[2], 0, ct)).StatusCode == HttpStatusCode.TooManyRequests) reopened.Dispose();
        Assert.Equal(HttpStatusCode.OK, reopened.StatusCode);
        reopened.Dispose();
        open[1].Dispose();

        // A rate-limited message creates no thread either (the limit here is 2 a minute: the thread_limit refusal counted one).
        await client.DeleteThreadAsync(threads[0], ct);
        using var second = await client.ConnectAsync(ct);
        await second.SendMessageAsync("Hello", cancellationToken: ct);
        await second.SendMessageAsync("Hello again", cancellationToken: ct);
        var refusal = Assert.IsType<ErrorFrame>((await second.ReceiveUntilAsync(e => e is ErrorFrame, ct))[^1]);
        Assert.Equal("rate_limited", refusal.Data.Code);
        Assert.Equal(3, (await client.ListThreadsAsync(cancellationToken: ct)).Items.Count);
    }
}

/// <summary>A raw SSE request: its status as soon as its headers arrive, then its events.</summary>
internal static class Sse
{
    public static async Task<HttpResponseMessage> OpenAsync(ApexClient client, string threadId, long after, CancellationToken ct)
    {
        using var request = client.Authorized(HttpMethod.Get, $"api/threads/{threadId}/events?after={after}");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
        return await client.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
    }

    /// <summary>The data of each event as the server wrote it, up to and with the run's terminal event.</summary>
    public static async Task<List<string>> ReadRawToTerminalAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var data = new List<string>();
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(body).EnumerateAsync(ct))
        {
            if (item.Data.Length == 0) continue;
            data.Add(item.Data);
            if (System.Text.Json.JsonSerializer.Deserialize(item.Data, ApexJsonContext.Default.ApexEvent)!.IsTerminal) break;
        }
        return data;
    }

    public static async Task<List<ApexEvent>> ReadToEndAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var events = new List<ApexEvent>();
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(body).EnumerateAsync(ct))
            if (item.Data.Length > 0) events.Add(System.Text.Json.JsonSerializer.Deserialize(item.Data, ApexJsonContext.Default.ApexEvent)!);
        return events;
    }
}

/// <summary>Revocation reaches the session's streams on every node of a cluster (PostgreSQL NOTIFY).</summary>
public sealed class CrossNodeRevocationTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task LogoutOnOneNodeClosesTheSessionsSocketAndStreamOnAnother()
    {
        var ct = Waits.Timeout();
        await using var database = await PostgresTestDatabase.CreateAsync();
        await using var home = await ApexTestServer.StartAsync(database.ServerSettings());
        await using var away = await ApexTestServer.StartAsync(database.ServerSettings());
        using var client = await home.NewUserAsync();
        var thread = await client.CreateThreadAsync(cancellationToken: ct);
        using var socket = await client.ConnectAsync(ct, away.BaseAddress);
        using var remote = away.CreateClient();
        remote.SignIn(client.Tokens!);
        using var sse = await Sse.OpenAsync(remote, thread.Id, 0, ct);
        Assert.Equal(HttpStatusCode.OK, sse.StatusCode);

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await client.LogoutAsync(ct);
        Assert.Null(await socket.ReceiveAsync(ct));
        var socketClosed = clock.Elapsed;
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.Socket.CloseStatus);
        Assert.Equal("session_revoked", Assert.IsType<ErrorFrame>(Assert.Single(await Sse.ReadToEndAsync(sse, ct))).Data.Code);
        output.WriteLine($"socket on the other node closed {socketClosed.TotalMilliseconds:F0} ms after logout; SSE ended {clock.Elapsed.TotalMilliseconds:F0} ms after");
    }
}
