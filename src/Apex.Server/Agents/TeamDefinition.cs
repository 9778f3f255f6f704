using System.Collections.Immutable;
using System.Text.Json;

namespace Apex.Server.Agents;

/// <summary>
/// A team: its agents and the supervisor policy that decides which of them run, in which order. The shipped team is read
/// from its definition file (<c>Agents/team.json</c>); a user's team or agent is read from the same format (an agent alone
/// is a team of one, run as a sequence). The last agent of the chosen pipeline writes the run's answer.
/// </summary>
internal sealed record TeamDefinition(string Name, string? Description, ImmutableArray<AgentDefinition> Agents, SupervisorPolicy Supervisor)
{
    public AgentDefinition? Find(string name) => Agents.FirstOrDefault(a => a.Name == name);

    public AgentDefinition Get(string name) => Find(name) ?? throw new InvalidOperationException($"No agent of team '{Name}' is named '{name}'.");

    /// <summary>A user's agent as a team of one.</summary>
    public static TeamDefinition Of(AgentDefinition agent) => new(agent.Name, agent.Purpose, [agent], new SupervisorPolicy.Sequence([agent.Name]));
}

/// <summary>How the supervisor picks the agents of a run.</summary>
internal abstract record SupervisorPolicy
{
    private SupervisorPolicy() { }

    /// <summary>The agents run in this order.</summary>
    public sealed record Sequence(ImmutableArray<string> Agents) : SupervisorPolicy;

    /// <summary>
    /// The triage agent runs first; the first route whose <c>when</c> matches the fields of its result picks the agents that
    /// follow, else <see cref="Otherwise"/>. A field that is missing or holds a value not in its list reads as its default.
    /// </summary>
    public sealed record Router(string Triage, ImmutableArray<RouteField> Fields, ImmutableArray<RouteRule> Routes, ImmutableArray<string> Otherwise) : SupervisorPolicy
    {
        /// <summary>The value of each field in a triage result (null: triage produced none).</summary>
        public ImmutableArray<(RouteField Field, string Value)> Read(JsonElement? result) =>
        [
            .. Fields.Select(f => (f, result is { ValueKind: JsonValueKind.Object } r && r.TryGetProperty(f.Name, out var v) && v.ValueKind == JsonValueKind.String
                && (f.Values.IsEmpty || f.Values.Contains(v.GetString()!)) ? v.GetString()! : f.Default)),
        ];

        public ImmutableArray<string> PipelineFor(ImmutableArray<(RouteField Field, string Value)> values)
        {
            foreach (var route in Routes)
                if (route.When.All(w => values.Any(v => v.Field.Name == w.Key && v.Value == w.Value))) return route.Then;
            return Otherwise;
        }
    }
}

/// <summary>A field of the triage agent's result that routes read: its name, how the supervisor says it, its values and its default.</summary>
internal sealed record RouteField(string Name, string Label, ImmutableArray<string> Values, string Default);

/// <summary>One route: when each named field holds its value, these agents follow triage.</summary>
internal sealed record RouteRule(ImmutableDictionary<string, string> When, ImmutableArray<string> Then);
