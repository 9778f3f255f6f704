using System.Net;
using System.Net.WebSockets;
using Apex.Client;
using Apex.Server.Storage;
using Apex.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Apex.Tests.Auth;

/// <summary>Issue 11's lesser defects and secrets at rest (defects 7 and 8), each as its own test.</summary>
public sealed class HardeningTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private ApexTestServer Server => shared.Server;

    [Fact]
    public async Task ATokenSignedWithTheRealKeyCannotRaiseItsTierOrLifetime()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var me = client.Tokens!.User;
        var sid = new JsonWebToken(client.Tokens.AccessToken).GetClaim("sid").Value;
        var secret = await Server.Services.GetRequiredService<IAccountStore>().GetOrCreateSigningKeyAsync("unused", DateTimeOffset.UtcNow, ct);
        var key = new SymmetricSecurityKey(Convert.FromBase64String(secret)) { KeyId = "primary" };
        string Forge(TimeSpan lifetime) => new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(new SecurityTokenDescriptor
        {
            Issuer = "apex",
            IssuedAt = DateTime.UtcNow,
            NotBefore = DateTime.UtcNow,
            Expires = DateTime.UtcNow + lifetime,
            Claims = new Dictionary<string, object> { ["sub"] = me.Id, ["sid"] = sid, ["tier"] = "enterprise" },
            SigningCredentials = new SigningCredentials(key, SecurityAlgorithms.HmacSha256),
        });

        // Ten years: longer than this server ever issues, so refused even with a valid signature.
        using var longLived = Server.CreateClient();
        longLived.SignIn(client.Tokens with { AccessToken = Forge(TimeSpan.FromDays(3650)) });
        Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => longLived.MeAsync(ct))).Status);

        // A normal lifetime is accepted, but the tier is the account's, not the token's claim.
        using var raised = Server.CreateClient();
        raised.SignIn(client.Tokens with { AccessToken = Forge(TimeSpan.FromMinutes(5)) });
        var usage = await raised.Http.SendAsync(raised.Authorized(HttpMethod.Get, "api/usage"), ct);
        Assert.Equal(HttpStatusCode.OK, usage.StatusCode);
        Assert.Contains("\"tier\":\"free\"", await usage.Content.ReadAsStringAsync(ct), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("=")]
    [InlineData("==")]
    [InlineData(" ")]
    public async Task ASignatureWithPaddingOrWhitespaceIsRefused(string extra)
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var request = new HttpRequestMessage(HttpMethod.Get, "api/auth/me");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + client.Tokens!.AccessToken + extra + (extra == " " ? "x" : ""));
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.Http.SendAsync(request, ct)).StatusCode);
        var (user, failure) = await Server.Services.GetRequiredService<Apex.Server.Auth.TokenService>().ValidateAsync(client.Tokens.AccessToken + extra, null, ct);
        Assert.Null(user);
        Assert.Equal("malformed token", failure);
    }

    [Fact]
    public async Task ABearerSubprotocolIsNeverEchoedBack()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        using var alone = new ClientWebSocket();
        alone.Options.AddSubProtocol("bearer." + client.Tokens!.AccessToken);
        // The client offered only the token; the server may not pick it, so the handshake fails or is closed at once.
        try
        {
            await alone.ConnectAsync(new UriBuilder(new Uri(Server.BaseAddress, "ws")) { Scheme = "ws" }.Uri, ct);
            Assert.NotEqual("bearer." + client.Tokens.AccessToken, alone.SubProtocol);
            var buffer = new byte[256];
            Assert.Equal(WebSocketMessageType.Close, (await alone.ReceiveAsync(buffer, ct)).MessageType);
            Assert.Equal(WebSocketCloseStatus.PolicyViolation, alone.CloseStatus);
        }
        catch (WebSocketException)
        {
            // refused during the handshake: nothing was echoed either
        }
    }

    [Fact]
    public async Task TokenAnswersAreNotCachedAndNothingIsSniffed()
    {
        var ct = Waits.Timeout();
        using var http = new HttpClient { BaseAddress = Server.BaseAddress };
        var registered = await http.PostAsync(new Uri("api/auth/register", UriKind.Relative),
            new StringContent($$"""{"email":"{{Guid.NewGuid():N}}@example.com","password":"correct horse battery"}""", System.Text.Encoding.UTF8, "application/json"), ct);
        Assert.Equal(HttpStatusCode.Created, registered.StatusCode);
        Assert.True(registered.Headers.CacheControl?.NoStore);
        Assert.Equal(["nosniff"], registered.Headers.GetValues("X-Content-Type-Options"));
        var health = await http.GetAsync(new Uri("healthz", UriKind.Relative), ct);
        Assert.Equal(["nosniff"], health.Headers.GetValues("X-Content-Type-Options"));
    }

    [Theory]
    [InlineData("password123")]
    [InlineData("12345678")]
    [InlineData("Qwertyuiop")]
    public async Task TheMostCommonPasswordsAreRefused(string password)
    {
        using var client = Server.CreateClient();
        var error = await Assert.ThrowsAsync<ApexApiException>(() => client.RegisterAsync($"{Guid.NewGuid():N}@example.com", password));
        Assert.Equal(HttpStatusCode.BadRequest, error.Status);
        Assert.Contains("most common", error.Body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ControlFramesCarryTheTimeTheyWereSent()
    {
        var ct = Waits.Timeout();
        using var client = await Server.NewUserAsync();
        var before = DateTimeOffset.UtcNow.AddSeconds(-5);
        using var socket = await client.ConnectAsync(ct);
        Assert.True(socket.Established!.Timestamp > before);
        await socket.SendFrameAsync(new ClientFrame("ping"), ct);
        Assert.True(Assert.IsType<Pong>(await socket.ReceiveAsync(ct)).Timestamp > before);
        await socket.SendFrameAsync(new ClientFrame("nonsense"), ct);
        Assert.True(Assert.IsType<ErrorFrame>(await socket.ReceiveAsync(ct)).Timestamp > before);
    }

    [Fact]
    public void TheDatabaseFileIsTheOwnersAlone()
    {
        if (OperatingSystem.IsWindows()) return;
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Server.DatabasePath));
    }
}

/// <summary>How the server starts as a process: its settings from any directory, and a clear line for a bad setting.</summary>
public sealed class StartupTests
{
    [Fact]
    public async Task StartedFromAnotherDirectoryTheServerReadsItsShippedSettingsAndKeepsItsDataThere()
    {
        if (OperatingSystem.IsWindows()) return;
        var ct = Waits.Timeout();
        var directory = Directory.CreateTempSubdirectory("apex-elsewhere-").FullName;
        try
        {
            // Information by default, as a user would run it; the shipped appsettings.json quiets ASP.NET Core's request log.
            await using var server = await ServerProcess.StartAsync(Path.Combine("data", "apex.db"), new() { ["Logging__LogLevel__Default"] = "Information" }, ct, directory);
            using var client = server.CreateClient();
            await client.RegisterAsync($"{Guid.NewGuid():N}@example.com", "correct horse battery", ct);
            await client.ListThreadsAsync(cancellationToken: ct);
            Assert.Contains(server.Output, line => line.Contains("Apex listening on", StringComparison.Ordinal));
            Assert.DoesNotContain(server.Output, line => line.Contains("Request starting", StringComparison.Ordinal));
            var folder = Path.Combine(directory, "data");
            Assert.True(File.Exists(Path.Combine(folder, "apex.db")));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(folder));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task AnInvalidSettingEndsTheProcessWithOneLineNamingItAndExitCodeOne()
    {
        var ct = Waits.Timeout();
        var (exitCode, stderr) = await ServerProcess.RunToExitAsync(["--Apex:Limits:MaxFrameBytes=1"], ct);
        Assert.Equal(1, exitCode);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(lines);
        Assert.StartsWith("apex: invalid settings (LimitsOptions):", line, StringComparison.Ordinal);
        Assert.Contains("MaxFrameBytes", line, StringComparison.Ordinal);
    }
}

/// <summary>Signing keys from settings, named by <c>kid</c>, rotated with the previous keys (issue 11, defect 7).</summary>
public sealed class SigningKeyTests
{
    [Fact]
    public async Task AConfiguredKeySignsTokensAndARotatedKeyStaysValidOnlyWhileListedAsPrevious()
    {
        var ct = Waits.Timeout();
        var path = Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");
        var first = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(48));
        var second = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(48));
        try
        {
            TokenResponse tokens;
            await using (var server = await ApexTestServer.StartAsync(new() { ["Apex:Auth:SigningKey"] = first }, databasePath: path))
            {
                using var client = await server.NewUserAsync();
                tokens = client.Tokens!;
                Assert.StartsWith("k-", new JsonWebToken(tokens.AccessToken).Kid, StringComparison.Ordinal);
            }
            // Rotated: the new key signs, the old one is still accepted while listed.
            await using (var rotated = await ApexTestServer.StartAsync(new() { ["Apex:Auth:SigningKey"] = second, ["Apex:Auth:PreviousSigningKeys:0"] = first }, databasePath: path))
            {
                using var client = rotated.CreateClient();
                client.SignIn(tokens);
                Assert.Equal(tokens.User.Id, (await client.MeAsync(ct)).Id);
            }
            // Dropped from the list: tokens it signed stop; the refresh token (not a JWT) still gets a new one.
            await using var later = await ApexTestServer.StartAsync(new() { ["Apex:Auth:SigningKey"] = second }, databasePath: path);
            using var again = later.CreateClient();
            again.SignIn(tokens);
            Assert.Equal(HttpStatusCode.Unauthorized, (await Assert.ThrowsAsync<ApexApiException>(() => again.MeAsync(ct))).Status);
            await again.RefreshAsync(ct);
            Assert.Equal(tokens.User.Id, (await again.MeAsync(ct)).Id);
        }
        finally
        {
            ApexTestServer.DeleteDatabase(path);
        }
    }

    [Fact]
    public async Task AKeyShorterThan32BytesIsRefusedAtStartUp() =>
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var server = await ApexTestServer.StartAsync(new() { ["Apex:Auth:SigningKey"] = Convert.ToBase64String(new byte[16]) });
        });
}
