using Microsoft.Extensions.Options;

namespace Apex.Server.Mcp;

/// <summary>MCP servers whose tools the agents may call (section <c>Apex:Mcp</c>), each as <c>Servers:&lt;name&gt;</c>.</summary>
internal sealed class McpOptions
{
    public const string Section = "Apex:Mcp";

    public Dictionary<string, McpServerOptions> Servers { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>One MCP server: started as a process speaking stdio (<c>Command</c>, <c>Args</c>, <c>Env</c>), or reached over Streamable HTTP (<c>Url</c>, <c>Headers</c>).</summary>
internal sealed class McpServerOptions
{
    public string? Command { get; set; }
    public List<string> Args { get; set; } = [];
    public Dictionary<string, string> Env { get; set; } = new(StringComparer.Ordinal);
    public Uri? Url { get; set; }
    public Dictionary<string, string> Headers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The agents offered this server's tools (as <c>mcp__&lt;server&gt;__&lt;tool&gt;</c>).</summary>
    public List<string> Agents { get; set; } = [];

    /// <summary>The lowest plan tier allowed to call this server's tools.</summary>
    public string Tier { get; set; } = "free";
}

internal sealed class McpOptionsValidator : IValidateOptions<McpOptions>
{
    public ValidateOptionsResult Validate(string? name, McpOptions options)
    {
        var failures = new List<string>();
        foreach (var (server, o) in options.Servers)
        {
            if (!System.Text.RegularExpressions.Regex.IsMatch(server, "^[A-Za-z0-9_-]{1,40}$"))
                failures.Add($"Apex:Mcp:Servers:{server}: a server's name is 1 to 40 letters, digits, '-' or '_'.");
            if (string.IsNullOrWhiteSpace(o.Command) == (o.Url is null))
                failures.Add($"Apex:Mcp:Servers:{server}: set either Command (stdio) or Url (Streamable HTTP).");
            if (o.Url is { IsAbsoluteUri: false }) failures.Add($"Apex:Mcp:Servers:{server}: Url must be absolute.");
            if (!Storage.Tiers.IsValid(o.Tier)) failures.Add($"Apex:Mcp:Servers:{server}: Tier must be free, pro or enterprise.");
            if (o.Agents.Count == 0) failures.Add($"Apex:Mcp:Servers:{server}: list the Agents offered its tools.");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
