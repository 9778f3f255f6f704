using System.Text.Json;
using Apex.Server.Storage;

namespace Apex.Server.Agents;

/// <summary>The teams runs use: the shipped one, and the users' own agents and teams at the version a run named.</summary>
internal sealed class AgentCatalog(AgentRegistry shipped, IAgentStore store)
{
    public TeamDefinition Shipped => shipped.Team;

    /// <summary>The run's team: the shipped one unless the run names a definition; null when that definition cannot be read.</summary>
    public async Task<TeamDefinition?> ResolveAsync(RunRecord run, CancellationToken cancellationToken)
    {
        if (run.AgentId is null || run.AgentVersion is not { } version) return shipped.Team;
        var record = await store.GetVersionAsync(run.UserId, run.AgentId, version, cancellationToken);
        return record is null ? null : Read(record);
    }

    /// <summary>A stored definition (validated when it was written) as a team; an agent is a team of one.</summary>
    public static TeamDefinition? Read(AgentRecord record)
    {
        using var document = JsonDocument.Parse(record.Definition);
        if (record.Kind == AgentKinds.Team) return DefinitionReader.Trusting.ReadTeam(document.RootElement).Team;
        return DefinitionReader.Trusting.ReadAgent(document.RootElement).Agent is { } agent ? TeamDefinition.Of(agent) : null;
    }
}
