using System.Text.Json;
using Apex.Client;
using Apex.Server.Agents;
using Apex.Server.Auth;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Llm;
using Apex.Server.Runs;
using Apex.Server.Storage;
using Apex.Server.Streaming;
using Apex.Server.Tools;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Apex.Server.Hosting;

/// <summary>Registers and wires each part of the server; Program.cs lists them.</summary>
internal static partial class ApexHostingExtensions
{
    public static WebApplicationBuilder AddApexHosting(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddProblemDetails();
        services.AddOpenApi();
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.TypeInfoResolverChain.Insert(0, ApexJsonContext.Default);
            o.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
            o.SerializerOptions.DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull;
        });
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<LimitsOptions>().BindConfiguration(LimitsOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LimitsOptions>, LimitsOptionsValidator>());
        services.AddHealthChecks();
        return builder;
    }

    public static WebApplicationBuilder AddApexStorage(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.TryAddSingleton<IdGenerator>();
        services.TryAddSingleton<NodeIdentity>();
        services.TryAddSingleton<StoreSignals>();
        services.AddOptions<WorkloadOptions>().BindConfiguration(WorkloadOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<Database>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<StorageOptions>>().Value;
            return options.Provider switch
            {
                "sqlite" => new SqliteDatabase(options.ConnectionString),
                "postgres" => new PostgresDatabase(options.ConnectionString
                    ?? throw new InvalidOperationException("Apex:Storage:ConnectionString is required for the postgres provider."),
                    sp.GetRequiredService<ILogger<PostgresDatabase>>()),
                _ => throw new InvalidOperationException($"Unknown storage provider '{options.Provider}'."),
            };
        });
        services.TryAddSingleton<IAccountStore, SqlAccountStore>();
        services.TryAddSingleton<IThreadStore, SqlThreadStore>();
        services.TryAddSingleton<IRunStore, SqlRunStore>();
        services.TryAddSingleton<IEventStore, SqlEventStore>();
        services.TryAddSingleton<IWorkloadStore, SqlWorkloadStore>();
        services.TryAddSingleton<IUsageStore, SqlUsageStore>();
        services.TryAddSingleton<EventRetention>();
        services.AddHostedService(sp => sp.GetRequiredService<EventRetention>());
        services.AddHostedService<PostgresListener>();
        return builder;
    }

    public static WebApplicationBuilder AddApexAuth(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.WsTicketLifetime > TimeSpan.Zero && o.AccessTokenLifetime > TimeSpan.Zero && o.RefreshTokenLifetime > TimeSpan.Zero,
                "Apex:Auth lifetimes (WsTicketLifetime, AccessTokenLifetime, RefreshTokenLifetime) must be positive.")
            .ValidateOnStart();
        services.TryAddSingleton<IPasswordHasher<UserRecord>, PasswordHasher<UserRecord>>();
        services.TryAddSingleton<TokenService>();
        services.AddAuthentication(ApexTokenHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApexTokenHandler>(ApexTokenHandler.SchemeName, null);
        services.AddAuthorization();
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.AddPolicy(AuthEndpoints.RateLimitPolicy, context => System.Threading.RateLimiting.RateLimitPartition.GetFixedWindowLimiter(
                context.Connection.RemoteIpAddress?.ToString() ?? "unknown",
                _ => new System.Threading.RateLimiting.FixedWindowRateLimiterOptions
                {
                    PermitLimit = context.RequestServices.GetRequiredService<IOptions<LimitsOptions>>().Value.AuthRequestsPerMinutePerAddress,
                    Window = TimeSpan.FromMinutes(1),
                }));
        });
        return builder;
    }

    /// <summary>Execution, agents, tools and the model.</summary>
    public static ApexRuntimeBuilder AddApexRuntime(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        // The event log is registered before the run worker so that it stops after it (hosted services stop in reverse order):
        // runs cancelled by the shutdown drain still write their terminal events.
        services.TryAddSingleton<EventBus>();
        services.TryAddSingleton<EventLog>();
        services.AddHostedService(sp => sp.GetRequiredService<EventLog>());
        services.TryAddSingleton(sp => new AgentRegistry(AgentTeam.Default()));
        services.TryAddSingleton<ToolRegistry>();
        services.TryAddSingleton<ExecutionEngineFactory>();
        services.TryAddSingleton<RunRecovery>();
        services.TryAddSingleton<RunWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<RunWorker>());
        services.TryAddSingleton<MessageRateLimiter>();
        services.TryAddSingleton<RunCoordinator>();
        services.AddOptions<LlmOptions>().BindConfiguration(LlmOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.IsValid, "Apex:Llm:Endpoint (an absolute URL) and Apex:Llm:Model are required when Apex:Llm:Provider is openai.").ValidateOnStart();
        services.TryAddSingleton<IChatClient>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<LlmOptions>>().Value;
            var time = sp.GetRequiredService<TimeProvider>();
            IChatClient model = options.Provider switch
            {
                "openai" => new RetryingChatClient(new OpenAiCompatibleChatClient(OpenAiHttpClient(options, sp.GetRequiredService<IOptions<LimitsOptions>>().Value), options.Model!),
                    options.MaxAttempts, time),
                _ => new BuiltInChatClient(options.BuiltInDelay, time),
            };
            return new LoggingChatClient(model, sp.GetRequiredService<ILogger<LoggingChatClient>>());
        });
        return new ApexRuntimeBuilder(services)
            .AddTool<WorkloadSummaryTool>()
            .AddTool<CostBreakdownTool>()
            .AddTool<LatencyProfileTool>()
            .AddTool<ErrorAnalysisTool>()
            .AddTool<RepeatedPromptsTool>()
            .AddTool<TokenEfficiencyTool>()
            .AddTool<RoutingWhatIfTool>()
            .AddTool<AnomaliesTool>();
    }

    private static HttpClient OpenAiHttpClient(LlmOptions options, LimitsOptions limits)
    {
        var endpoint = options.Endpoint!.AbsoluteUri.EndsWith('/') ? options.Endpoint : new Uri(options.Endpoint.AbsoluteUri + "/");
        // The agent timeout bounds a model call; the run's token cancels it sooner.
        var http = new HttpClient { BaseAddress = endpoint, Timeout = limits.AgentTimeout };
        if (!string.IsNullOrEmpty(options.ApiKey)) http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", options.ApiKey);
        return http;
    }

    public static WebApplicationBuilder AddApexStreaming(this WebApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<ThreadFollower>();
        builder.Services.TryAddSingleton<ConnectionRegistry>();
        builder.Services.TryAddSingleton<ClientProtocol>();
        return builder;
    }

    public static WebApplication UseApexPipeline(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        var limits = app.Services.GetRequiredService<IOptions<LimitsOptions>>().Value;
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = limits.SocketKeepAliveInterval, KeepAliveTimeout = limits.SocketIdleTimeout });
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseRateLimiter();
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
            var database = app.Services.GetRequiredService<Database>();
            LogListening(app.Logger, string.Join(", ", addresses), database.Provider, database.Describe());
            var llm = app.Services.GetRequiredService<IOptions<LlmOptions>>().Value;
            LogModel(app.Logger, llm.Provider == "openai" ? $"{llm.Model} at {llm.Endpoint}" : $"the built-in model ({BuiltInChatClient.ModelId})");
        });
        return app;
    }

    /// <summary>Creates or upgrades the schema before anything uses the database.</summary>
    public static async Task InitializeApexStorageAsync(this WebApplication app)
    {
        var database = app.Services.GetRequiredService<Database>();
        var applied = await Migrations.ApplyAsync(database, app.Services.GetRequiredService<TimeProvider>(), app.Lifetime.ApplicationStopping);
        LogSchema(app.Logger, Migrations.Latest, applied);
    }

    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new Dictionary<string, string> { ["status"] = "ok" })).WithTags("Health").AllowAnonymous();
        app.MapGet("/readyz", Ready).WithTags("Health").AllowAnonymous();
        return app;
    }

    private static async Task<Results<Ok<Dictionary<string, string>>, ProblemHttpResult>> Ready(Database database, CancellationToken cancellationToken)
    {
        try
        {
            if (await Migrations.IsCurrentAsync(database, cancellationToken)) return TypedResults.Ok(new Dictionary<string, string> { ["status"] = "ready" });
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Schema not current", detail: "The database schema is not at the version this server needs.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Database unreachable", detail: ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Apex listening on {Addresses}; data: {Provider} at {Location}")]
    private static partial void LogListening(ILogger logger, string addresses, string provider, string location);

    [LoggerMessage(Level = LogLevel.Information, Message = "Agents use {Model}")]
    private static partial void LogModel(ILogger logger, string model);

    [LoggerMessage(Level = LogLevel.Information, Message = "Database schema at version {Version} ({Applied} migration(s) applied now)")]
    private static partial void LogSchema(ILogger logger, int version, int applied);
}

/// <summary>Adds tools to the runtime: <c>services.AddApexRuntime().AddTool&lt;MyTool&gt;()</c>.</summary>
internal sealed class ApexRuntimeBuilder(IServiceCollection services)
{
    public IServiceCollection Services { get; } = services;

    public ApexRuntimeBuilder AddTool<TTool>() where TTool : class, IApexTool
    {
        Services.TryAddEnumerable(ServiceDescriptor.Singleton<IApexTool, TTool>());
        return this;
    }
}
