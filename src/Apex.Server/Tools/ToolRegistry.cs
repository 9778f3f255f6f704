using System.Collections.Frozen;
using Microsoft.Extensions.AI;

namespace Apex.Server.Tools;

/// <summary>The tools known to the server, by name; immutable after start-up.</summary>
internal sealed class ToolRegistry
{
    private readonly FrozenDictionary<string, IApexTool> _tools;

    public ToolRegistry(IEnumerable<IApexTool> tools)
    {
        var list = tools.ToList();
        var duplicate = list.GroupBy(t => t.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new InvalidOperationException($"Two tools are named '{duplicate.Key}'.");
        _tools = list.ToFrozenDictionary(t => t.Name, StringComparer.Ordinal);
    }

    public IApexTool? Find(string name) => _tools.GetValueOrDefault(name);

    public IEnumerable<string> Names => _tools.Keys;

    /// <summary>The named tools as functions one agent of one run may call, each through that run's dispatcher (unknown names are skipped).</summary>
    public IList<AITool> Functions(IEnumerable<string> names, ToolDispatcher dispatcher, Execution.UserExecutionContext context, string agent) =>
        [.. names.Select(Find).OfType<IApexTool>().Select(t => new DispatchedTool(t, dispatcher, context, agent))];
}
