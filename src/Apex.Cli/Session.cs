using System.Net;
using Apex.Client;

namespace Apex.Cli;

/// <summary>
/// The signed-in client for one command: the server from <c>--server</c>, else <c>APEX_SERVER</c>, else the one signed in to,
/// else the default; the stored API key or tokens, with the access token refreshed when it is about to expire and the rotated
/// refresh token written back at once.
/// </summary>
internal sealed class Session
{
    public const string DefaultServer = "http://127.0.0.1:5080";
    // Refresh a little before expiry, so a token never runs out between the check and the request.
    private static readonly TimeSpan RefreshMargin = TimeSpan.FromSeconds(60);

    private Session(ApexClient client, ConfigFolder config, Uri server)
    {
        Client = client;
        Config = config;
        Server = server;
    }

    public ApexClient Client { get; }

    public ConfigFolder Config { get; }

    public Uri Server { get; }

    /// <summary>The server a command talks to, as given (<c>--server</c>, <c>APEX_SERVER</c>), signed in to, or the default.</summary>
    public static Uri ResolveServer(string? option, Credentials? credentials)
    {
        var env = Environment.GetEnvironmentVariable("APEX_SERVER");
        var text = option ?? (string.IsNullOrEmpty(env) ? null : env) ?? credentials?.Server ?? DefaultServer;
        if (!Uri.TryCreate(text.EndsWith('/') ? text : text + "/", UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new CliException($"'{text}' is not an http(s) address of an Apex server.");
        return uri;
    }

    public static ApexClient NewClient(Uri server) => new(new HttpClient { BaseAddress = server, Timeout = Timeout.InfiniteTimeSpan });

    /// <summary>A client signed in as the stored credentials say, for the server the command names.</summary>
    public static async Task<Session> OpenAsync(string? serverOption, CancellationToken cancellationToken)
    {
        var config = ConfigFolder.FromEnvironment();
        var credentials = config.ReadCredentials() ?? throw new CliException("Not signed in: run `apex login` first.");
        var server = ResolveServer(serverOption, credentials);
        if (!SameServer(server, credentials.Server))
            throw new CliException($"Signed in to {credentials.Server}, not {server}: run `apex login --server {server.ToString().TrimEnd('/')}`.");
        var session = new Session(NewClient(server), config, server);
        if (credentials.ApiKey is { } key) session.Client.UseApiKey(key);
        else await session.SignInAsync(credentials, cancellationToken);
        return session;
    }

    /// <summary>Refreshes the access token when it is about to expire (long commands call this before each request they make later).</summary>
    public async Task EnsureFreshAsync(CancellationToken cancellationToken)
    {
        if (Client.Tokens is null) return;
        var credentials = Config.ReadCredentials() ?? throw new CliException("Signed out meanwhile: run `apex login`.");
        await SignInAsync(credentials, cancellationToken);
    }

    private async Task SignInAsync(Credentials credentials, CancellationToken cancellationToken)
    {
        if (credentials.Tokens is null) throw new CliException($"{Config.CredentialsPath} holds neither tokens nor an API key: run `apex login`.");
        if (credentials.AccessTokenExpiresAt > DateTimeOffset.UtcNow + RefreshMargin)
        {
            Client.SignIn(credentials.Tokens);
            return;
        }
        using var held = await Config.LockAsync(cancellationToken);
        // Another apex process may have refreshed while this one waited for the lock: spend the newest refresh token only.
        var current = Config.ReadCredentials() ?? credentials;
        if (current.Tokens is null) throw new CliException("Signed out meanwhile: run `apex login`.");
        Client.SignIn(current.Tokens);
        if (current.AccessTokenExpiresAt > DateTimeOffset.UtcNow + RefreshMargin) return;
        TokenResponse tokens;
        try
        {
            tokens = await Client.RefreshAsync(cancellationToken);
        }
        catch (ApexApiException e) when (e.Status == HttpStatusCode.Unauthorized)
        {
            throw new CliException("The session has ended (signed out or expired): run `apex login`.");
        }
        Config.WriteCredentials(Stored(current.Server, tokens));
    }

    public static Credentials Stored(string server, TokenResponse tokens) =>
        new(server, tokens, DateTimeOffset.UtcNow + TimeSpan.FromSeconds(tokens.ExpiresIn));

    private static bool SameServer(Uri server, string stored) =>
        Uri.TryCreate(stored.EndsWith('/') ? stored : stored + "/", UriKind.Absolute, out var uri) && Uri.Compare(uri, server, UriComponents.SchemeAndServer | UriComponents.Path, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;
}
