using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Apex.Tests.Infrastructure;

/// <summary>
/// One server shared by a class's tests, with every optional route mapped (<c>/metrics</c>) and its log captured at
/// Warning and above, so a test can check that nothing it sent made the server log an error. Uploads are limited to
/// <see cref="MaxUploadBytes"/>, so that going over the limit is cheap.
/// </summary>
public sealed class LoggedServer : IAsyncLifetime
{
    public const int MaxUploadBytes = 1024 * 1024;

    public CapturedLog Log { get; } = new();

    public ApexTestServer Server { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Server = await ApexTestServer.StartAsync(new()
        {
            ["Apex:Telemetry:Prometheus"] = "true",
            ["Apex:Workloads:MaxUploadBytes"] = MaxUploadBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, services => services.AddSingleton<ILoggerProvider>(Log));

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
