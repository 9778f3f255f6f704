using System.Collections;
using System.Collections.Immutable;
using System.Reflection;
using System.Runtime.CompilerServices;

namespace Apex.Tests.Execution;

public sealed class ArchitectureTests
{
    private static readonly Assembly Server = typeof(Program).Assembly;

    [Fact]
    public void TheServerHasNoMutableStaticState()
    {
        var offenders = new List<string>();
        foreach (var type in Server.GetTypes())
        {
            if (type.IsDefined(typeof(CompilerGeneratedAttribute)) || type.Name.Contains('<', StringComparison.Ordinal)) continue;
            foreach (var field in type.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if (field.IsLiteral || field.IsDefined(typeof(CompilerGeneratedAttribute))) continue;
                // Source-generated regex and logging caches are immutable singletons.
                if (field.FieldType.FullName?.StartsWith("System.Text.RegularExpressions", StringComparison.Ordinal) == true) continue;
                if (field.FieldType.FullName?.StartsWith("System.Action", StringComparison.Ordinal) == true && field.IsInitOnly) continue;
                if (!field.IsInitOnly) offenders.Add($"{type.FullName}.{field.Name} is not readonly");
                else if (IsMutableCollection(field.FieldType)) offenders.Add($"{type.FullName}.{field.Name} is a mutable {field.FieldType.Name}");
            }
        }
        Assert.Empty(offenders);
    }

    [Fact]
    public void ThereIsExactlyOneExecutionEngine()
    {
        var engines = Server.GetTypes().Where(t => t.Name.EndsWith("Engine", StringComparison.Ordinal) && !t.Name.Contains('<', StringComparison.Ordinal)).ToList();
        var engine = Assert.Single(engines);
        Assert.Equal("ExecutionEngine", engine.Name);
        Assert.True(engine.IsSealed);
        var factories = Server.GetTypes().Where(t => t.Name.EndsWith("EngineFactory", StringComparison.Ordinal)).ToList();
        Assert.Equal("ExecutionEngineFactory", Assert.Single(factories).Name);
        // One store contract per concern, each with one implementation (on both databases).
        string[] stores = ["IAccountStore", "IThreadStore", "IRunStore", "IEventStore", "IWorkloadStore", "IUsageStore", "IAgentStore", "IApprovalStore"];
        foreach (var store in stores)
            Assert.Single(Server.GetTypes(), t => !t.IsInterface && t.GetInterface("Apex.Server.Storage." + store) is not null);
        Assert.Equal(stores.Order(), Server.GetTypes().Where(t => t.IsInterface && t.Namespace == "Apex.Server.Storage" && t.Name.EndsWith("Store", StringComparison.Ordinal)).Select(t => t.Name).Order());
    }

    /// <summary>The folders in reading order, bottom up (README, Layout): a folder uses only folders before it.</summary>
    private static readonly string[] Layers =
        ["Storage", "Events", "Execution", "Llm", "Tools", "Mcp", "Agents", "Runs", "Api", "Auth", "Threads", "Workloads", "Admin", "Streaming", "Interop", "WebApp", "Hosting"];

    [Fact]
    public void TheServerFoldersFormNoDependencyCycle()
    {
        var edges = LayerGraph.Build(Server);
        var cycles = LayerGraph.Cycles(edges.Keys);
        Assert.True(cycles.Count == 0, "Folder cycles:\n" + string.Join("\n", cycles.Select(c => c + Evidence(edges, c))));
    }

    [Fact]
    public void EveryFolderUsesOnlyTheLayersBelowIt()
    {
        var edges = LayerGraph.Build(Server);
        var unknown = edges.Keys.SelectMany(e => new[] { e.From, e.To }).Distinct().Where(f => !Layers.Contains(f)).ToList();
        Assert.True(unknown.Count == 0, $"Folders missing from the layer list (add them in reading order, and to the README's Layout): {string.Join(", ", unknown)}");
        var upward = edges.Where(e => Array.IndexOf(Layers, e.Key.To) > Array.IndexOf(Layers, e.Key.From)).Select(e => $"{e.Key.From} -> {e.Key.To}: {e.Value}").ToList();
        Assert.True(upward.Count == 0, "References to a higher layer:\n" + string.Join("\n", upward));
    }

    [Fact]
    public void TheCycleCheckFindsACycleAndTheGraphSeesBodiesAndSignatures()
    {
        Assert.Equal(["A -> B -> C -> A"], LayerGraph.Cycles([("A", "B"), ("B", "C"), ("C", "A"), ("C", "D")]));
        Assert.Empty(LayerGraph.Cycles([("A", "B"), ("B", "C"), ("A", "C")]));
        var edges = LayerGraph.Build(Server);
        // A use only inside a method body (the factory creates the dispatcher) and one in a constructor signature.
        Assert.Contains(("Agents", "Tools"), edges.Keys);
        Assert.Contains(("Runs", "Storage"), edges.Keys);
    }

    private static string Evidence(IReadOnlyDictionary<(string From, string To), string> edges, string cycle)
    {
        var folders = cycle.Split(" -> ");
        return string.Concat(folders.Zip(folders.Skip(1)).Select(p => $"\n    {p.First} -> {p.Second}: {edges.GetValueOrDefault((p.First, p.Second))}"));
    }

    [Fact]
    public void TheMutableStaticCheckCatchesAMutableField()
    {
        Assert.True(IsMutableCollection(typeof(List<string>)));
        Assert.True(IsMutableCollection(typeof(string[])));
        Assert.False(IsMutableCollection(typeof(ImmutableArray<string>)));
        Assert.False(IsMutableCollection(typeof(string)));
    }

    private static bool IsMutableCollection(Type type) =>
        type.IsArray || (typeof(IEnumerable).IsAssignableFrom(type) && type != typeof(string)
            && !type.Namespace!.StartsWith("System.Collections.Immutable", StringComparison.Ordinal)
            && !type.Namespace.StartsWith("System.Collections.Frozen", StringComparison.Ordinal));
}
