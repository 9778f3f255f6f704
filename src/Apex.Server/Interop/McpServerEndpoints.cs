using System.Text.Json;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Apex.Server.Storage;
using Apex.Server.Tools;
using Microsoft.Extensions.AI;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace Apex.Server.Interop;

/// <summary>
/// Apex as an MCP server at <c>/mcp</c> (Streamable HTTP, stateless), for the same bearer tokens as the rest of the API
/// and scoped to the caller: the workload tools over the caller's own data, and <c>ask_apex</c>, which runs the team as an
/// ordinary run (stored, numbered, resumable, followed by the caller's other devices), reports its agent and tool
/// steps as progress notifications and returns the answer.
/// </summary>
internal static class McpServerEndpoints
{
    public const string Path = "/mcp";

    public static WebApplicationBuilder AddApexMcpServer(this WebApplicationBuilder builder)
    {
        builder.Services.AddHttpContextAccessor();
        builder.AddApexDoors();
        builder.Services.AddMcpServer(o => o.ServerInfo = new() { Name = "apex", Version = "1.0.0" })
            // Stateless: every request carries its bearer token and is its own HTTP request, so the caller is always the request's user.
            .WithHttpTransport(o => o.Stateless = true);
        builder.Services.AddOptions<McpServerOptions>().Configure<IEnumerable<IApexTool>, IServiceProvider>((options, tools, services) =>
        {
            options.ToolCollection ??= [];
            foreach (var tool in tools) options.ToolCollection.Add(McpServerTool.Create(new CallerTool(tool, services)));
            options.ToolCollection.Add(AskApex(services));
        });
        return builder;
    }

    public static IEndpointConventionBuilder MapApexMcpServer(this IEndpointRouteBuilder app) =>
        app.MapMcp(Path).RequireAuthorization().WithTags("MCP");

    private static CurrentUser Caller(IServiceProvider services) =>
        CurrentUser.From(services.GetRequiredService<IHttpContextAccessor>().HttpContext?.User ?? new())
        ?? throw new McpException("Not signed in.");

    private static McpServerTool AskApex(IServiceProvider services) => McpServerTool.Create(
        async (string question, IProgress<ProgressNotificationValue> progress, CancellationToken cancellationToken, string? thread_id = null) =>
        {
            var user = Caller(services);
            var doors = services.GetRequiredService<DoorRuns>();
            // thread_id must be one of the caller's: a thread of another user is answered as one that does not exist.
            var submitted = await doors.SubmitAsync(user.Id, thread_id, question, [], null, cancellationToken);
            if (submitted is not DoorSubmission.Started { Run: var run }) return Refused(((DoorSubmission.Refused)submitted).Message);
            var step = 0;
            // Following stops at the run's terminal event; when the MCP client cancels the call first, the run is cancelled too.
            await foreach (var evt in doors.FollowAsync(user.Id, run, cancellationToken))
            {
                switch (evt)
                {
                    case AgentStarted or AgentCompleted or ToolExecuting or ToolCompleted:
                        progress.Report(new ProgressNotificationValue { Progress = ++step, Message = Describe(evt) });
                        break;
                    case RunCompleted completed:
                        return new CallToolResult { Content = [new TextContentBlock { Text = $"{await doors.AnswerAsync(user.Id, completed, cancellationToken)}\n\n(thread {run.ThreadId}, run {run.RunId})" }] };
                    case RunFailed failed:
                        return Refused($"The run failed ({failed.Data.Reason}): {failed.Data.Message}");
                    case RunCancelled cancelled:
                        return Refused($"The run was cancelled ({cancelled.Data.Reason}).");
                }
            }
            return Refused("The run's events ended before its terminal event.");
        },
        new McpServerToolCreateOptions
        {
            Name = "ask_apex",
            Description = "Ask Apex's agent team about your LLM workload (cost, latency, models). Runs the team on your data and returns its answer; thread_id continues a thread.",
            Services = services,
        });

    /// <summary>
    /// An expected refusal (another user's thread, a plan tier, bad arguments, a failed run) as the tool's error result. Thrown as an
    /// exception, the SDK would log each one as an unhandled tool exception at Error, with a stack trace.
    /// </summary>
    private static CallToolResult Refused(string message) => new() { IsError = true, Content = [new TextContentBlock { Text = message }] };

    private static string Describe(ApexEvent evt) => evt switch
    {
        AgentStarted a => $"{a.Data.Agent} started",
        AgentCompleted a => $"{a.Data.Agent} {a.Data.Status}",
        ToolExecuting t => $"{t.AgentName}: {t.Data.Tool}",
        ToolCompleted t => $"{t.AgentName}: {t.Data.Tool} {t.Data.Status}",
        _ => evt.Type,
    };

    /// <summary>One of Apex's tools for the MCP caller: its schema and tier checked, computed over the caller's own data.</summary>
    private sealed class CallerTool(IApexTool tool, IServiceProvider services) : AIFunction
    {
        public override string Name => tool.Name;

        public override string Description => tool.Description;

        public override JsonElement JsonSchema => tool.ParametersSchema;

        protected override async ValueTask<object?> InvokeCoreAsync(AIFunctionArguments arguments, CancellationToken cancellationToken)
        {
            var user = Caller(services);
            if (!Tiers.Allows(user.Tier, tool.RequiredTier)) return Refused($"'{tool.Name}' needs the {tool.RequiredTier} plan; this account is on {user.Tier}.");
            var json = JsonSerializer.SerializeToElement(arguments.ToDictionary(a => a.Key, a => a.Value), AIJsonUtilities.DefaultOptions);
            if (SchemaValidator.Validate(tool.ParametersSchema, json) is { } problem) return Refused(problem);
            var ids = services.GetRequiredService<IdGenerator>();
            var context = UserExecutionContext.Create(user.Id, "mcp", ids.NewId(), user.Tier, services.GetRequiredService<TimeProvider>().GetUtcNow());
            try
            {
                return await tool.InvokeAsync(context, json, cancellationToken);
            }
            catch (ToolException ex)
            {
                return Refused(ex.Message);
            }
        }
    }
}
