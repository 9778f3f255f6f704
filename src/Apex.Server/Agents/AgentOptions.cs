using Apex.Server.Execution;
using Apex.Server.Mcp;
using Apex.Server.Tools;
using Microsoft.Extensions.Options;

namespace Apex.Server.Agents;

/// <summary>Agents and teams (section <c>Apex:Agents</c>).</summary>
internal sealed class AgentOptions
{
    public const string Section = "Apex:Agents";

    /// <summary>The shipped team's definition file; null: <c>Agents/team.json</c> next to the server. A relative path is read from the working directory.</summary>
    public string? TeamFile { get; set; }

    /// <summary>How many agents and teams (together) one user may define.</summary>
    public int MaxDefinitionsPerUser { get; set; } = 50;

    public string TeamFilePath => TeamFile is { Length: > 0 } file ? Path.GetFullPath(file) : AgentTeam.DefaultPath;
}

/// <summary>The readers of definitions, with the tool names and limits of this server.</summary>
internal sealed class DefinitionChecks(ToolRegistry tools, IOptions<McpOptions> mcp, IOptions<LimitsOptions> limits)
{
    /// <summary>
    /// For the team file, read before the MCP servers are connected: a built-in tool must exist, an <c>mcp__&lt;server&gt;__&lt;tool&gt;</c>
    /// must name a configured server (its tools are listed only once it is connected).
    /// </summary>
    public DefinitionReader ForFile() => new(name => McpServerOf(name) is { } server
        ? mcp.Value.Servers.ContainsKey(server) ? null : $"no MCP server '{server}' is configured (Apex:Mcp:Servers)."
        : tools.Find(name) is null ? $"no tool is named '{name}'." : null, limits.Value.AgentTimeout, limits.Value.MaxModelTurnsPerAgent, offersConfiguredTools: true);

    /// <summary>For a user's definition: every tool must be one the server offers now.</summary>
    public DefinitionReader ForUser() => new(name => tools.Find(name) is not null ? null
        : McpServerOf(name) is { } server && mcp.Value.Servers.ContainsKey(server) ? $"the MCP server '{server}' offers no tool '{name}' (or is not connected right now)."
        : McpServerOf(name) is { } unknown ? $"no MCP server '{unknown}' is configured." : $"no tool is named '{name}'.",
        limits.Value.AgentTimeout, limits.Value.MaxModelTurnsPerAgent, offersConfiguredTools: false);

    private static string? McpServerOf(string tool) =>
        tool.StartsWith(McpToolSource.Prefix, StringComparison.Ordinal) && tool.IndexOf("__", McpToolSource.Prefix.Length, StringComparison.Ordinal) is var end and > 0
            ? tool[McpToolSource.Prefix.Length..end] : tool.StartsWith(McpToolSource.Prefix, StringComparison.Ordinal) ? tool[McpToolSource.Prefix.Length..] : null;
}

/// <summary>The shipped team's file is read and validated at start: a server with an invalid one does not start.</summary>
internal sealed class AgentOptionsValidator(DefinitionChecks checks) : IValidateOptions<AgentOptions>
{
    public ValidateOptionsResult Validate(string? name, AgentOptions options)
    {
        var failures = new List<string>();
        if (options.MaxDefinitionsPerUser < 0) failures.Add("Apex:Agents:MaxDefinitionsPerUser must not be negative.");
        var (_, errors) = AgentTeam.Read(options.TeamFilePath, checks.ForFile());
        failures.AddRange(errors.Select(e => "Apex:Agents:TeamFile " + e));
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
