using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Apex.Client;
using Apex.Tests.Infrastructure;

namespace Apex.Tests.Auth;

public sealed class AuthTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApexTestServer Server => shared.Server;

    [Theory]
    [InlineData("not-an-email", "correct horse battery", "email")]
    [InlineData("short@example.com", "short", "password")]
    public async Task RegistrationWithBadInputIsAValidationProblem(string email, string password, string field)
    {
        using var client = Server.CreateClient();
        var error = await Assert.ThrowsAsync<ApexApiException>(() => client.RegisterAsync(email, password));
        Assert.Equal(HttpStatusCode.BadRequest, error.Status);
        using var problem = JsonDocument.Parse(error.Body);
        Assert.True(problem.RootElement.GetProperty("errors").TryGetProperty(field, out _));
    }

    [Fact]
    public async Task DuplicateEmailIsAConflictWhateverItsCase()
    {
        using var first = Server.CreateClient();
        await first.RegisterAsync("dup@example.com", "correct horse battery");
        using var second = Server.CreateClient();
        var error = await Assert.ThrowsAsync<ApexApiException>(() => second.RegisterAsync("DUP@example.com", "another password"));
        Assert.Equal(HttpStatusCode.Conflict, error.Status);
        Assert.Contains("application/problem+json", (await PostRaw("api/auth/register", new { email = "dup@example.com", password = "whatever123" })).Content.Headers.ContentType!.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoginWorksAndAWrongPasswordIsUnauthorized()
    {
        using var client = Server.CreateClient();
        var registered = await client.RegisterAsync("login@example.com", "correct horse battery");
        var tokens = await client.LoginAsync("login@example.com", "correct horse battery");
        Assert.Equal(registered.User.Id, tokens.User.Id);
        Assert.Equal(registered.User.Id, (await client.MeAsync()).Id);

        var error = await Assert.ThrowsAsync<ApexApiException>(() => Server.CreateClient().LoginAsync("login@example.com", "wrong password"));
        Assert.Equal(HttpStatusCode.Unauthorized, error.Status);
        var unknown = await Assert.ThrowsAsync<ApexApiException>(() => Server.CreateClient().LoginAsync("nobody@example.com", "wrong password"));
        Assert.Equal(HttpStatusCode.Unauthorized, unknown.Status);
    }

    [Fact]
    public async Task RepeatedFailuresLockTheAccount()
    {
        using var client = Server.CreateClient();
        await client.RegisterAsync("locked@example.com", "correct horse battery");
        for (var i = 0; i < 5; i++)
            Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => client.LoginAsync("locked@example.com", "wrong"))).Status);
        var locked = await Assert.ThrowsAsync<ApexApiException>(() => client.LoginAsync("locked@example.com", "correct horse battery"));
        Assert.Equal(HttpStatusCode.Locked, locked.Status);
    }

    [Fact]
    public async Task RefreshRotatesTheRefreshToken()
    {
        using var client = await Server.NewUserAsync();
        var old = client.Tokens!.RefreshToken;
        var refreshed = await client.RefreshAsync();
        Assert.NotEqual(old, refreshed.RefreshToken);
        Assert.Equal(client.Tokens.User.Id, (await client.MeAsync()).Id);

        var reuse = await PostRaw("api/auth/refresh", new { refresh_token = old });
        Assert.Equal(HttpStatusCode.Unauthorized, reuse.StatusCode);
    }

    [Fact]
    public async Task ReusingARotatedRefreshTokenRevokesTheWholeSession()
    {
        using var client = await Server.NewUserAsync();
        var stolen = client.Tokens!.RefreshToken;
        await client.RefreshAsync();
        Assert.Equal(client.Tokens.User.Id, (await client.MeAsync()).Id);

        // Someone presents the old token: it fails, and the newer refresh token and its access token stop working too.
        Assert.Equal(HttpStatusCode.Unauthorized, (await PostRaw("api/auth/refresh", new { refresh_token = stolen })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => client.MeAsync())).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => client.RefreshAsync())).Status);
    }

    [Fact]
    public async Task LogoutRevokesTheAccessAndRefreshTokens()
    {
        using var client = await Server.NewUserAsync();
        // Used once first: the server now remembers the token as checked, and logout must still end it.
        await client.MeAsync();
        await client.LogoutAsync();
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => client.MeAsync())).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => client.RefreshAsync())).Status);
    }

    [Fact]
    public async Task ProtectedRoutesNeedAToken()
    {
        using var http = new HttpClient { BaseAddress = Server.BaseAddress };
        var response = await http.GetAsync(new Uri("api/threads", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync(new Uri("api/ws-ticket", UriKind.Relative), null)).StatusCode);
        // The routes added with the web app, token accounting and MCP.
        foreach (var path in new[] { "api/usage", "api/usage/tools", "api/workloads/charts" })
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync(new Uri(path, UriKind.Relative))).StatusCode);
        // Users' agents and teams (issue 15).
        foreach (var (method, path) in new[] { (HttpMethod.Get, "api/agents"), (HttpMethod.Post, "api/agents"), (HttpMethod.Get, "api/agents/x"), (HttpMethod.Put, "api/agents/x"),
            (HttpMethod.Delete, "api/agents/x"), (HttpMethod.Get, "api/teams"), (HttpMethod.Post, "api/teams"), (HttpMethod.Get, "api/teams/x"), (HttpMethod.Put, "api/teams/x"),
            (HttpMethod.Delete, "api/teams/x") })
        {
            using var request = new HttpRequestMessage(method, path);
            if (method == HttpMethod.Post || method == HttpMethod.Put) request.Content = new StringContent("""{"name":"a","instructions":"i"}""", System.Text.Encoding.UTF8, "application/json");
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.SendAsync(request)).StatusCode);
        }
        using var mcp = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}""", System.Text.Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync(new Uri("mcp", UriKind.Relative), mcp)).StatusCode);
        // The AG-UI and OpenAI-compatible doors; /v1 answers in OpenAI's error shape.
        using var agui = new StringContent("""{"threadId":"t","runId":"r","messages":[{"id":"1","role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync(new Uri("api/agui", UriKind.Relative), agui)).StatusCode);
        foreach (var (method, path) in new[] { (HttpMethod.Get, "v1/models"), (HttpMethod.Post, "v1/chat/completions"), (HttpMethod.Post, "v1/responses") })
        {
            using var request = new HttpRequestMessage(method, path);
            if (method == HttpMethod.Post) request.Content = new StringContent("""{"model":"apex","input":"hi","messages":[{"role":"user","content":"hi"}]}""", System.Text.Encoding.UTF8, "application/json");
            using var answer = await http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Unauthorized, answer.StatusCode);
            using var body = System.Text.Json.JsonDocument.Parse(await answer.Content.ReadAsStringAsync());
            Assert.Equal("invalid_api_key", body.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
    }

    [Fact]
    public async Task TokensStayValidAcrossARestart()
    {
        var path = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");
        try
        {
            TokenResponse tokens;
            await using (var first = await ApexTestServer.StartAsync(databasePath: path))
            {
                using var client = await first.NewUserAsync();
                tokens = client.Tokens!;
            }
            await using var second = await ApexTestServer.StartAsync(databasePath: path);
            using var again = second.CreateClient();
            using var request = new HttpRequestMessage(HttpMethod.Get, "api/auth/me");
            request.Headers.Authorization = new("Bearer", tokens.AccessToken);
            var me = await again.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, me.StatusCode);
            Assert.Equal(tokens.User.Id, (await me.Content.ReadFromJsonAsync(ApexJsonContext.Default.UserDto))!.Id);
        }
        finally
        {
            ApexTestServer.DeleteDatabase(path);
        }
    }

    private async Task<HttpResponseMessage> PostRaw(string path, object body)
    {
        using var http = new HttpClient { BaseAddress = Server.BaseAddress };
        return await http.PostAsync(new Uri(path, UriKind.Relative), new StringContent(JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json"));
    }
}
