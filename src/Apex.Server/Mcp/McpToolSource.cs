using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Execution;
using Apex.Server.Tools;
using Microsoft.Extensions.Options;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace Apex.Server.Mcp;

/// <summary>
/// The configured MCP servers' tools, offered to the agents as <c>mcp__&lt;server&gt;__&lt;tool&gt;</c> and called through
/// the same dispatcher as every tool (schema, tier, timeout, cancellation sent to the server, honest status, usage log).
/// Each server is connected at start, its tools listed, and listed again on <c>list_changed</c>; a server that goes away
/// (a crashed stdio process, a dropped HTTP session) is reconnected with back-off, and while it is down its tools stay
/// listed but answer <c>error</c> at once.
/// </summary>
internal sealed partial class McpToolSource(IOptions<McpOptions> options, TimeProvider time, ILoggerFactory loggers, ILogger<McpToolSource> logger)
    : BackgroundService, IToolSource
{
    private readonly ConcurrentDictionary<string, McpClient> _clients = new(StringComparer.Ordinal);
    private ImmutableDictionary<string, McpTool> _tools = ImmutableDictionary.Create<string, McpTool>(StringComparer.Ordinal);
    private readonly TaskCompletionSource _listed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public const string Prefix = "mcp__";

    /// <summary>Completes once every configured server has been listed at least once (or at once with none).</summary>
    public Task Listed => _listed.Task;

    public IApexTool? Find(string name) => Volatile.Read(ref _tools).GetValueOrDefault(name);

    public IEnumerable<string> NamesFor(string agent) =>
        Volatile.Read(ref _tools).Values.Where(t => t.Agents.Contains(agent)).Select(t => t.Name);

    internal McpClient? ClientFor(string server) => _clients.GetValueOrDefault(server);

    /// <summary>Completes at the next connection or loss of a server (take it before checking, then await it).</summary>
    internal Task NextChangeAsync() => Volatile.Read(ref _changed).Task;

    private void Changed() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var servers = options.Value.Servers;
        if (servers.Count == 0) _listed.TrySetResult();
        var listedOnce = new ConcurrentDictionary<string, bool>(StringComparer.Ordinal);
        await Task.WhenAll(servers.Select(s => KeepConnectedAsync(s.Key, s.Value, () =>
        {
            listedOnce[s.Key] = true;
            if (listedOnce.Count == servers.Count) _listed.TrySetResult();
        }, stoppingToken)));
    }

    private async Task KeepConnectedAsync(string server, McpServerOptions config, Action listed, CancellationToken stoppingToken)
    {
        var backoff = TimeSpan.FromSeconds(1);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var client = await McpClient.CreateAsync(Transport(server, config), new McpClientOptions(), loggers, stoppingToken);
                await using var onChange = client.RegisterNotificationHandler(NotificationMethods.ToolListChangedNotification,
                    async (_, ct) => await ListAsync(server, config, client, ct));
                await ListAsync(server, config, client, stoppingToken);
                _clients[server] = client;
                Changed();
                listed();
                LogConnected(logger, server);
                backoff = TimeSpan.FromSeconds(1);
                await client.Completion.WaitAsync(stoppingToken);
                LogDisconnected(logger, server);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                LogConnectFailed(logger, ex, server, backoff.TotalSeconds);
            }
            finally
            {
                if (_clients.TryRemove(server, out _)) Changed();
            }
            try { await Task.Delay(backoff, time, stoppingToken); }
            catch (OperationCanceledException) { return; }
            backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(30).Ticks));
        }
    }

    private async Task ListAsync(string server, McpServerOptions config, McpClient client, CancellationToken cancellationToken)
    {
        var listed = await client.ListToolsAsync(cancellationToken: cancellationToken);
        var agents = config.Agents.ToImmutableHashSet(StringComparer.Ordinal);
        var fresh = listed.Select(t => new McpTool(this, server, t.Name, t.Description, t.JsonSchema, config.Tier, agents)).ToList();
        ImmutableInterlocked.Update(ref _tools, tools => tools.RemoveRange(tools.Values.Where(t => t.Server == server).Select(t => t.Name))
            .SetItems(fresh.Select(t => KeyValuePair.Create(t.Name, t))));
        LogListed(logger, server, fresh.Count);
    }

    private static IClientTransport Transport(string server, McpServerOptions config) => config.Url is { } url
        ? new HttpClientTransport(new HttpClientTransportOptions { Name = server, Endpoint = url, AdditionalHeaders = config.Headers })
        : new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = server,
            Command = config.Command!,
            Arguments = config.Args,
            EnvironmentVariables = config.Env.ToDictionary(e => e.Key, e => (string?)e.Value),
        });

    [LoggerMessage(Level = LogLevel.Information, Message = "MCP server {Server} connected")]
    private static partial void LogConnected(ILogger logger, string server);

    [LoggerMessage(Level = LogLevel.Warning, Message = "MCP server {Server} went away; reconnecting")]
    private static partial void LogDisconnected(ILogger logger, string server);

    [LoggerMessage(Level = LogLevel.Warning, Message = "MCP server {Server} could not be reached; retrying in {Seconds} s")]
    private static partial void LogConnectFailed(ILogger logger, Exception exception, string server, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "MCP server {Server} offers {Count} tools")]
    private static partial void LogListed(ILogger logger, string server, int count);
}

/// <summary>One tool of an MCP server, as an Apex tool.</summary>
internal sealed class McpTool(McpToolSource source, string server, string tool, string? description, JsonElement schema, string tier, ImmutableHashSet<string> agents)
    : IApexTool
{
    public string Server => server;

    public ImmutableHashSet<string> Agents => agents;

    public string Name { get; } = $"{McpToolSource.Prefix}{server}__{tool}";

    public string Description => description ?? $"The {tool} tool of the {server} MCP server.";

    public JsonElement ParametersSchema => schema;

    public string RequiredTier => tier;

    public async Task<JsonElement> InvokeAsync(UserExecutionContext context, JsonElement arguments, CancellationToken cancellationToken)
    {
        var client = source.ClientFor(server) ?? throw new ToolException($"The MCP server '{server}' is not connected right now (it is being restarted); try again later.");
        var args = arguments.ValueKind == JsonValueKind.Object ? arguments.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value) : [];
        // The token reaches the server: a cancelled call is sent notifications/cancelled.
        var result = await client.CallToolAsync(tool, args, cancellationToken: cancellationToken);
        var text = string.Join("\n", result.Content.OfType<TextContentBlock>().Select(t => t.Text));
        if (result.IsError == true) throw new ToolException(text.Length > 0 ? text : $"The {tool} tool of '{server}' reported an error.");
        return JsonSerializer.SerializeToElement(new McpToolResult(text, result.StructuredContent), ApexJsonContext.Default.McpToolResult);
    }
}
