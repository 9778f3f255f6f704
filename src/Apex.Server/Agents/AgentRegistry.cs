using System.Collections.Frozen;
using System.Text.Json;

namespace Apex.Server.Agents;

/// <summary>The shipped team, loaded from its definition file at start-up and never changed.</summary>
internal sealed class AgentRegistry
{
    private readonly FrozenDictionary<string, AgentDefinition> _agents;

    public AgentRegistry(TeamDefinition team)
    {
        Team = team;
        _agents = team.Agents.ToFrozenDictionary(a => a.Name, StringComparer.Ordinal);
    }

    /// <summary>These agents, with the shipped file's supervisor policy.</summary>
    public AgentRegistry(IEnumerable<AgentDefinition> agents) : this(AgentTeam.Load(AgentTeam.DefaultPath) with { Agents = [.. agents] })
    {
    }

    public TeamDefinition Team { get; }

    public AgentDefinition Get(string name) =>
        _agents.TryGetValue(name, out var agent) ? agent : throw new InvalidOperationException($"No agent is named '{name}'.");

    public IEnumerable<string> Names => _agents.Keys;
}

/// <summary>
/// The shipped team, an AI-workload optimization assistant, as data: <c>Agents/team.json</c> next to the server (another
/// file with <c>Apex:Agents:TeamFile</c>). Its agents' result schemas are kept in step with Apex.Client's TriageResult,
/// DataResult, OptimizationResult and ActionsResult, which the built-in model writes and the report writer reads.
/// </summary>
internal static class AgentTeam
{
    public static string DefaultPath => Path.Combine(AppContext.BaseDirectory, "Agents", "team.json");

    /// <summary>The triage agent's result schema, as the shipped file defines it (read when asked: a server given another file never reads this one).</summary>
    public static JsonElement TriageSchema => Load(DefaultPath).Get(AgentNames.Triage).OutputSchema!.Value;

    /// <summary>The shipped team's agents.</summary>
    public static IEnumerable<AgentDefinition> Default() => Load(DefaultPath).Agents;

    /// <summary>Reads a team file whose tool names are not checked (the shipped one, which start-up validated).</summary>
    public static TeamDefinition Load(string path) =>
        Read(path, new DefinitionReader(_ => null, TimeSpan.MaxValue, int.MaxValue, offersConfiguredTools: true)) is { Team: { } team } ? team
            : throw new InvalidOperationException($"The team file {path} is not valid.");

    /// <summary>Reads and validates a team file: the team, or each problem as one line naming the file, the agent and the field.</summary>
    public static (TeamDefinition? Team, IReadOnlyList<string> Errors) Read(string path, DefinitionReader reader)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return (null, [$"{path}: {ex.Message}"]);
        }
        using (document)
        {
            var (team, errors) = reader.ReadTeam(document.RootElement);
            return (team, [.. errors.Select(e => $"{path}: {e}")]);
        }
    }
}
