using System.Collections.Frozen;
using Microsoft.Extensions.AI;

namespace Apex.Server.Tools;

/// <summary>
/// The tools known to the server, by name: the ones registered at start-up (immutable) and those of the tool sources
/// (MCP servers), whose lists change while the server runs.
/// </summary>
internal sealed class ToolRegistry
{
    private readonly FrozenDictionary<string, IApexTool> _tools;
    private readonly IToolSource[] _sources;

    public ToolRegistry(IEnumerable<IApexTool> tools, IEnumerable<IToolSource> sources)
    {
        var list = tools.ToList();
        var duplicate = list.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new InvalidOperationException($"Two tools are named '{duplicate.Key}'.");
        _tools = list.ToFrozenDictionary(t => t.Name, StringComparer.Ordinal);
        _sources = [.. sources];
    }

    public IApexTool? Find(string name) => _tools.GetValueOrDefault(name) ?? _sources.Select(s => s.Find(name)).FirstOrDefault(t => t is not null);

    public IEnumerable<string> Names => _tools.Keys;

    /// <summary>
    /// The agent's tools (the named ones, and, when <paramref name="offerSourceTools"/>, what the tool sources offer it by name) as
    /// functions one agent of one run may call, each through that run's dispatcher; unknown names are skipped.
    /// </summary>
    public IList<AITool> Functions(IEnumerable<string> names, ToolDispatcher dispatcher, Execution.UserExecutionContext context, string agent, bool offerSourceTools,
        Func<string, bool> requiresApproval) =>
        [.. names.Concat(offerSourceTools ? _sources.SelectMany(s => s.NamesFor(agent)) : []).Distinct(StringComparer.Ordinal).Select(Find).OfType<IApexTool>()
            .Select(t => new DispatchedTool(t, dispatcher, context, agent, requiresApproval(t.Name)))];
}
