using Apex.Server.Admin;
using Apex.Server.Auth;
using Apex.Server.Hosting;
using Apex.Server.Interop;
using Apex.Server.Streaming;
using Apex.Server.Threads;
using Apex.Server.WebApp;
using Apex.Server.Workloads;
using Microsoft.Extensions.Options;

try
{
    var builder = WebApplication.CreateBuilder(ApexHostingExtensions.Options(args));
    builder.AddApexHosting();
    builder.AddApexStorage();
    builder.AddApexAuth();
    builder.AddApexRuntime();
    builder.AddApexStreaming();
    builder.AddApexMcpServer();
    builder.AddApexDoors();
    builder.AddApexTelemetry();

    var app = builder.Build();
    app.UseApexPipeline();
    app.UseApexWebApp();
    await app.InitializeApexStorageAsync();
    await app.InitializeApexAuthAsync();

    app.MapHealthEndpoints();
    app.MapAuthEndpoints();
    app.MapApiKeyEndpoints();
    app.MapAdminEndpoints();
    app.MapThreadEndpoints();
    app.MapRunEndpoints();
    app.MapAgentEndpoints();
    app.MapWorkloadEndpoints();
    app.MapWorkloadChartEndpoints();
    app.MapStreamingEndpoints();
    app.MapApexMcpServer();
    app.MapAgUiEndpoints();
    app.MapOpenAiEndpoints();
    app.MapOpenApi();
    app.MapApexMetrics();

    await app.RunAsync();
    return 0;
}
catch (OptionsValidationException invalid) when (ApexHostingExtensions.IsOwnProcess)
{
    // One clear line naming the setting, not an unhandled-exception abort with a stack trace.
    return ApexHostingExtensions.ExplainInvalidSettings(invalid);
}

/// <summary>The entry point, visible to the integration tests' WebApplicationFactory.</summary>
public partial class Program;
