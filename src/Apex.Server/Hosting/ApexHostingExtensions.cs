using System.Text.Json;
using Apex.Client;
using Apex.Server.Agents;
using Apex.Server.Auth;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Llm;
using Apex.Server.Mcp;
using Apex.Server.Runs;
using Apex.Server.Storage;
using Apex.Server.Streaming;
using Apex.Server.Tools;
using Apex.Server.Workloads;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Http.Resilience;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Apex.Server.Hosting;

/// <summary>Registers and wires each part of the server; Program.cs lists them.</summary>
internal static partial class ApexHostingExtensions
{
    /// <summary>
    /// The host's options: its content root (where appsettings.json is read) is the working directory when that holds an
    /// appsettings.json (<c>dotnet run</c>, a deployment folder), else the server's own folder, so a server started from
    /// anywhere else still reads the settings it shipped with. Data paths stay relative to the working directory.
    /// </summary>
    public static WebApplicationOptions Options(string[] args) => new()
    {
        Args = args,
        ContentRootPath = File.Exists(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json")) ? Directory.GetCurrentDirectory() : AppContext.BaseDirectory,
    };

    /// <summary>Whether the server is its own process (a host that embeds it, such as the tests' factory, sees start-up exceptions as they are).</summary>
    public static bool IsOwnProcess => System.Reflection.Assembly.GetEntryAssembly() == typeof(ApexHostingExtensions).Assembly;

    public static int ExplainInvalidSettings(OptionsValidationException invalid)
    {
        Console.Error.WriteLine($"apex: invalid settings ({invalid.OptionsType.Name}): {string.Join(" ", invalid.Failures)}");
        return 1;
    }

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
        services.AddOptions<ApprovalOptions>().BindConfiguration(ApprovalOptions.Section).ValidateDataAnnotations().ValidateOnStart();
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
        // Redis first among the hosted services, so that it is connected (or known unreachable) before anything asks.
        services.AddOptions<RedisOptions>().BindConfiguration(RedisOptions.Section)
            .Validate(o => o.FallbackInterval > TimeSpan.Zero && o.StreamLease >= TimeSpan.FromSeconds(3) && !string.IsNullOrWhiteSpace(o.Prefix),
                "Apex:Redis: FallbackInterval must be positive, StreamLease at least 3 s, Prefix not empty.")
            .ValidateOnStart();
        services.TryAddSingleton<RedisConnection>();
        services.AddHostedService(sp => sp.GetRequiredService<RedisConnection>());
        services.TryAddSingleton<RedisSignalBus>();
        services.AddHostedService(sp => sp.GetRequiredService<RedisSignalBus>());
        // The cluster's signal bus, chosen at start-up: NOTIFY alone unless Redis is configured.
        services.TryAddSingleton<SignalBus>(sp => sp.GetRequiredService<IOptions<RedisOptions>>().Value.IsConfigured
            ? sp.GetRequiredService<RedisSignalBus>() : new NotifySignalBus());
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
                    sp.GetRequiredService<ILogger<PostgresDatabase>>(), sp.GetRequiredService<SignalBus>()),
                _ => throw new InvalidOperationException($"Unknown storage provider '{options.Provider}'."),
            };
        });
        services.TryAddSingleton<IAccountStore, SqlAccountStore>();
        services.TryAddSingleton<IThreadStore, SqlThreadStore>();
        services.TryAddSingleton<IRunStore, SqlRunStore>();
        services.TryAddSingleton<IEventStore, SqlEventStore>();
        services.TryAddSingleton<IWorkloadStore, SqlWorkloadStore>();
        services.TryAddSingleton<WorkloadImporter>();
        services.TryAddSingleton<IUsageStore, SqlUsageStore>();
        services.TryAddSingleton<IAgentStore, SqlAgentStore>();
        services.TryAddSingleton<IApprovalStore, SqlApprovalStore>();
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
        services.TryAddSingleton<SigningKey>();
        services.TryAddSingleton<TokenService>();
        services.TryAddSingleton<SecurityLog>();
        services.TryAddSingleton<DecoyPassword>();
        services.TryAddSingleton<SessionWatch>();
        services.TryAddSingleton<SessionCache>();
        services.AddHostedService<SessionSweeper>();
        // One default scheme for every door: API keys (apex_…) to their handler, every other bearer to JwtBearer.
        services.AddAuthentication(ApiKeyAuthenticationHandler.PolicyScheme)
            .AddPolicyScheme(ApiKeyAuthenticationHandler.PolicyScheme, "Access token or API key", o => o.ForwardDefaultSelector = ApiKeyAuthenticationHandler.SelectScheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddJwtBearer();
        services.AddOptions<JwtBearerOptions>(JwtBearerDefaults.AuthenticationScheme).Configure<TokenService>((o, tokens) =>
        {
            // The token's session must be live; a token that passed everything is remembered (token: its text) until it expires.
            async Task SessionAsync(ResultContext<JwtBearerOptions> context, System.Security.Claims.ClaimsIdentity identity, string? token)
            {
                var (user, failure) = await tokens.CheckSessionAsync(identity, context.HttpContext.RequestAborted);
                if (user is null)
                {
                    context.Fail(failure!);
                    return;
                }
                if (token is not null) tokens.RememberChecked(token, identity);
                context.Principal = user.ToPrincipal(JwtBearerDefaults.AuthenticationScheme);
                context.Success();
            }

            o.MapInboundClaims = false;
            o.TokenValidationParameters = tokens.Parameters;
            o.Events = new JwtBearerEvents
            {
                // Exactly the shape this server issues: no padding, whitespace or other characters a lenient decoder skips.
                // A token this node checked before (and that has not expired) skips the signature and claims check; its session is still checked.
                OnMessageReceived = async context =>
                {
                    var header = context.Request.Headers.Authorization.ToString();
                    if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return;
                    var token = header["Bearer ".Length..];
                    if (!TokenService.IsCompact(token)) context.Fail("malformed token");
                    else if (tokens.TryGetChecked(token, out var identity)) await SessionAsync(context, identity, token: null);
                },
                // A signed, unexpired token is not enough: its session must still be live (logout revokes it at once).
                OnTokenValidated = context => SessionAsync(context, (System.Security.Claims.ClaimsIdentity)context.Principal!.Identity!,
                    (context.SecurityToken as Microsoft.IdentityModel.JsonWebTokens.JsonWebToken)?.EncodedToken),
            };
        });
        services.AddAuthorizationBuilder().AddPolicy(CurrentUser.AdminPolicy, policy => policy.RequireAssertion(context => CurrentUser.From(context.User)?.IsAdmin == true));
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.AddPolicy(AuthEndpoints.RateLimitPolicy, context =>
            {
                var address = context.Connection.RemoteIpAddress?.ToString() ?? "unknown";
                var services = context.RequestServices;
                var permits = services.GetRequiredService<IOptions<LimitsOptions>>().Value.AuthRequestsPerMinutePerAddress;
                var redis = services.GetRequiredService<RedisConnection>();
                // With Redis configured the window is the cluster's (falling back to this node's while Redis is unreachable).
                return redis.IsConfigured
                    ? System.Threading.RateLimiting.RateLimitPartition.Get(address, key => new ClusterWindowLimiter(redis, key, permits, TimeSpan.FromMinutes(1)))
                    : System.Threading.RateLimiting.RateLimitPartition.GetFixedWindowLimiter(address, _ => new System.Threading.RateLimiting.FixedWindowRateLimiterOptions
                    {
                        PermitLimit = permits,
                        Window = TimeSpan.FromMinutes(1),
                    });
            });
        });
        return builder;
    }

    /// <summary>Execution, agents, tools and the model.</summary>
    public static ApexRuntimeBuilder AddApexRuntime(this WebApplicationBuilder builder)
    {
        builder.Services.AddOptions<BudgetOptions>().BindConfiguration(BudgetOptions.Section)
            .Validate(o => new[] { o.Free, o.Pro, o.Enterprise }.All(t => t.MonthlyTokens is null or >= 0 && t.MonthlyCostUsd is null or >= 0), "Apex:Budgets figures must not be negative.")
            .ValidateOnStart();
        builder.Services.TryAddSingleton<BudgetLedger>();
        var services = builder.Services;
        // The event log is registered before the run worker so that it stops after it (hosted services stop in reverse order):
        // runs cancelled by the shutdown drain still write their terminal events.
        services.TryAddSingleton<ApexTelemetry>();
        services.TryAddSingleton<EventBus>();
        services.TryAddSingleton<EventLog>();
        services.AddHostedService(sp => sp.GetRequiredService<EventLog>());
        services.TryAddSingleton<ToolRegistry>();
        // The shipped team from its definition file, validated at start (an invalid file stops the server with one line).
        services.AddOptions<AgentOptions>().BindConfiguration(AgentOptions.Section).ValidateOnStart();
        services.TryAddSingleton<DefinitionChecks>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AgentOptions>, AgentOptionsValidator>());
        services.TryAddSingleton(sp => new AgentRegistry(AgentTeam.Load(sp.GetRequiredService<IOptions<AgentOptions>>().Value.TeamFilePath)));
        services.TryAddSingleton<AgentCatalog>();
        services.AddOptions<McpOptions>().BindConfiguration(McpOptions.Section).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<McpOptions>, McpOptionsValidator>());
        services.TryAddSingleton<McpToolSource>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IToolSource, McpToolSource>(sp => sp.GetRequiredService<McpToolSource>()));
        services.AddHostedService(sp => sp.GetRequiredService<McpToolSource>());
        services.TryAddSingleton<ExecutionEngineFactory>();
        services.TryAddSingleton<RunRecovery>();
        services.TryAddSingleton<RunWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<RunWorker>());
        services.TryAddSingleton<MessageRateLimiter>();
        services.TryAddSingleton<RunCoordinator>();
        services.AddOptions<LlmOptions>().BindConfiguration(LlmOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.IsValid, "Apex:Llm:Endpoint (an absolute URL) and Apex:Llm:Model are required when Apex:Llm:Provider is openai.").ValidateOnStart();
        services.AddApexModel();
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

    /// <summary>
    /// The model the agents talk to: the Microsoft.Extensions.AI pipeline (function invocation through the run's
    /// ToolDispatcher, OpenTelemetry, logging, honest outcomes) around the configured model, which is registered under
    /// <see cref="ModelKey"/> (tests replace only that): the built-in model, or the OpenAI adapter of
    /// Microsoft.Extensions.AI.OpenAI over an HTTP client with retries (before anything streamed, honouring
    /// <c>Retry-After</c>) and a circuit breaker per endpoint (Microsoft.Extensions.Http.Resilience).
    /// </summary>
    private static void AddApexModel(this IServiceCollection services)
    {
        services.AddHttpClient(ModelKey).AddStandardResilienceHandler().Configure((HttpStandardResilienceOptions o, IServiceProvider sp) =>
        {
            var llm = sp.GetRequiredService<IOptions<LlmOptions>>().Value;
            var limits = sp.GetRequiredService<IOptions<LimitsOptions>>().Value;
            o.Retry.MaxRetryAttempts = Math.Max(1, llm.MaxAttempts - 1);
            o.Retry.ShouldHandle = args => ValueTask.FromResult(llm.MaxAttempts > 1 && HttpClientResiliencePredicates.IsTransient(args.Outcome));
            o.Retry.Delay = llm.RetryDelay;
            o.Retry.UseJitter = true;
            // An attempt lasts until the response headers (the body streams after); the agent timeout bounds the whole call.
            o.AttemptTimeout.Timeout = limits.AgentTimeout;
            o.TotalRequestTimeout.Timeout = limits.AgentTimeout * 2;
            o.CircuitBreaker.SamplingDuration = limits.AgentTimeout * 2 > TimeSpan.FromSeconds(30) ? limits.AgentTimeout * 2 : TimeSpan.FromSeconds(30);
            o.CircuitBreaker.MinimumThroughput = 5;
            o.CircuitBreaker.FailureRatio = 0.5;
            o.CircuitBreaker.BreakDuration = llm.BreakDuration;
        });
        services.TryAddKeyedSingleton<IChatClient>(ModelKey, (sp, _) =>
        {
            var options = sp.GetRequiredService<IOptions<LlmOptions>>().Value;
            if (options.Provider != "openai") return new BuiltInChatClient(options.BuiltInDelay, sp.GetRequiredService<TimeProvider>(), options.BuiltInPieces == "tokens");
            var client = new OpenAI.OpenAIClient(new System.ClientModel.ApiKeyCredential(string.IsNullOrEmpty(options.ApiKey) ? "none" : options.ApiKey),
                new OpenAI.OpenAIClientOptions
                {
                    Endpoint = options.Endpoint,
                    Transport = new System.ClientModel.Primitives.HttpClientPipelineTransport(sp.GetRequiredService<IHttpClientFactory>().CreateClient(ModelKey)),
                    // Retries are the resilience handler's, which knows Retry-After and the circuit.
                    RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0),
                    NetworkTimeout = sp.GetRequiredService<IOptions<LimitsOptions>>().Value.AgentTimeout,
                });
            return client.GetChatClient(options.Model).AsIChatClient();
        });
        services.TryAddSingleton(sp => ModelPipeline.Build(sp.GetRequiredKeyedService<IChatClient>(ModelKey),
            sp.GetRequiredService<IOptions<LimitsOptions>>().Value.MaxModelTurnsPerAgent, sp.GetRequiredService<ILoggerFactory>(), sp));
    }

    /// <summary>The service key of the configured model, inside the pipeline.</summary>
    public const string ModelKey = "apex-model";

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
        app.Use((context, next) =>
        {
            var headers = context.Response.Headers;
            // Browsers must take every answer as its declared type, and nothing that carries a credential is cached.
            headers.XContentTypeOptions = "nosniff";
            var path = context.Request.Path;
            if (path.StartsWithSegments("/api/auth") || path.StartsWithSegments("/api/keys") || path.StartsWithSegments("/api/ws-ticket"))
                headers.CacheControl = "no-store";
            return next(context);
        });
        var limits = app.Services.GetRequiredService<IOptions<LimitsOptions>>().Value;
        // The shipped team's file, read and validated now: an invalid one stops the start with its one line, before the host logs anything.
        app.Services.GetRequiredService<AgentRegistry>();
        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = limits.SocketKeepAliveInterval, KeepAliveTimeout = limits.SocketIdleTimeout });
        // Routing here, not first: the socket endpoint is short-circuited from here (MapStreamingEndpoints), past what follows,
        // and still gets the error pages, the headers above and the WebSocket upgrade.
        app.UseRouting();
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

    /// <summary>Loads the token signing key (creating it on a new database) before the server takes requests.</summary>
    public static async Task InitializeApexAuthAsync(this WebApplication app)
    {
        await app.Services.GetRequiredService<SigningKey>().LoadAsync(app.Lifetime.ApplicationStopping);
        // The first admins come from settings; an account registered later with one of these emails is an admin at once.
        var admins = app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.Admins.Select(AuthEndpoints.Normalize).ToList();
        var granted = await app.Services.GetRequiredService<IAccountStore>().GrantRoleAsync(admins, Roles.Admin, app.Lifetime.ApplicationStopping);
        if (granted > 0) LogAdminsGranted(app.Logger, granted);
    }

    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder app)
    {
        app.MapGet("/healthz", () => TypedResults.Ok(new Dictionary<string, string> { ["status"] = "ok" })).WithTags("Health").AllowAnonymous();
        app.MapGet("/readyz", Ready).WithTags("Health").AllowAnonymous();
        return app;
    }

    /// <summary>
    /// Ready when the database is reachable and its schema current. With Redis configured it also says how Redis is doing
    /// (<c>redis</c>: <c>connected</c> or <c>unreachable</c>) and what carries the wake-ups now (<c>signals</c>: <c>redis</c> or
    /// <c>notify</c>); Redis being unreachable does not make the node unready: it falls back.
    /// </summary>
    private static async Task<Results<Ok<Dictionary<string, string>>, ProblemHttpResult>> Ready(Database database, RedisConnection redis, SignalBus bus, CancellationToken cancellationToken)
    {
        try
        {
            if (await Migrations.IsCurrentAsync(database, cancellationToken))
            {
                var ready = new Dictionary<string, string> { ["status"] = "ready" };
                if (redis.IsConfigured)
                {
                    ready["redis"] = redis.IsAvailable ? "connected" : "unreachable";
                    ready["signals"] = database.SupportsCluster ? bus.Carrier : "none";
                    ready["limits"] = redis.IsAvailable ? "cluster" : "node";
                }
                return TypedResults.Ok(ready);
            }
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Schema not current", detail: "The database schema is not at the version this server needs.");
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return TypedResults.Problem(statusCode: StatusCodes.Status503ServiceUnavailable, title: "Database unreachable", detail: ex.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Apex listening on {Addresses}; data: {Provider} at {Location}")]
    private static partial void LogListening(ILogger logger, string addresses, string provider, string location);

    [LoggerMessage(Level = LogLevel.Information, Message = "Gave {Count} account(s) listed in Apex:Auth:Admins the admin role")]
    private static partial void LogAdminsGranted(ILogger logger, int count);

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
