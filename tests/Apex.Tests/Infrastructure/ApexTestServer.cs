using Apex.Client;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Apex.Tests.Infrastructure;

/// <summary>
/// The real server on Kestrel on a free loopback port, with its own SQLite file. Tests talk to it
/// only through real HTTP, WebSocket and SSE clients.
/// </summary>
public sealed class ApexTestServer : IAsyncDisposable
{
    private readonly Factory _factory;
    private readonly bool _keepDatabase;

    private ApexTestServer(Factory factory, bool keepDatabase)
    {
        _factory = factory;
        _keepDatabase = keepDatabase;
    }

    public string DatabasePath => _factory.DatabasePath;

    public Uri BaseAddress { get; private set; } = null!;

    public IServiceProvider Services => _factory.Services;

    public static Task<ApexTestServer> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? services = null,
        string? databasePath = null, bool keepDatabase = false)
    {
        var path = databasePath ?? Path.Combine(Path.GetTempPath(), "apex-tests", Guid.NewGuid().ToString("N") + ".db");
        var factory = new Factory(path, settings ?? [], services);
        factory.UseKestrel(0);
        factory.StartServer();
        var server = new ApexTestServer(factory, keepDatabase || databasePath is not null);
        var address = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.BaseAddress = new Uri(address.Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("localhost", "127.0.0.1", StringComparison.Ordinal) + "/");
        return Task.FromResult(server);
    }

    public ApexClient CreateClient() => new(new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) });

    /// <summary>A freshly registered user with its own client.</summary>
    public async Task<ApexClient> NewUserAsync(string? email = null)
    {
        var client = CreateClient();
        await client.RegisterAsync(email ?? $"user-{Guid.NewGuid():N}@example.com", "correct horse battery");
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await _factory.DisposeAsync();
        if (!_keepDatabase) DeleteDatabase(DatabasePath);
    }

    public static void DeleteDatabase(string path)
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        foreach (var suffix in new[] { "", "-wal", "-shm" })
            if (File.Exists(path + suffix)) File.Delete(path + suffix);
    }

    private sealed class Factory(string databasePath, Dictionary<string, string?> settings, Action<IServiceCollection>? services) : WebApplicationFactory<Program>
    {
        public string DatabasePath { get; } = databasePath;

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            builder.UseEnvironment("Testing");
            builder.UseSetting("Apex:Storage:Provider", "sqlite");
            builder.UseSetting("Apex:Storage:ConnectionString", DatabasePath);
            foreach (var (key, value) in settings) builder.UseSetting(key, value);
            builder.ConfigureLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
            if (services is not null) builder.ConfigureTestServices(services);
        }
    }
}

/// <summary>One server shared by the tests of a class.</summary>
public sealed class SharedServer : IAsyncLifetime
{
    public ApexTestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await ApexTestServer.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
