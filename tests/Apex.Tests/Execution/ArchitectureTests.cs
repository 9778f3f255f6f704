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
        Assert.Single(Server.GetTypes(), t => !t.IsInterface && t.GetInterface("Apex.Server.Storage.IApexStore") is not null);
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
