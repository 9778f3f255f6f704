using System.Collections.Frozen;
using System.Reflection;
using System.Reflection.Emit;

namespace Apex.Tests.Execution;

/// <summary>
/// Which folder of the server uses which, read from the compiled assembly: every type's base types,
/// interfaces, fields, properties, signatures and the members its method bodies name (IL tokens).
/// A folder is the namespace segment after <c>Apex.Server.</c>; lambdas and async state machines are
/// nested types, so they count for the folder of the type that declares them.
/// </summary>
internal static class LayerGraph
{
    private const string Root = "Apex.Server.";

    private static readonly FrozenDictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToFrozenDictionary(o => o.Value);

    /// <summary>Edges folder → folder, each with one example "Type uses Type" to show where it comes from.</summary>
    public static IReadOnlyDictionary<(string From, string To), string> Build(Assembly assembly)
    {
        var edges = new Dictionary<(string, string), string>();
        foreach (var type in assembly.GetTypes())
        {
            var from = FolderOf(type);
            if (from is null) continue;
            foreach (var used in Uses(type).SelectMany(Flatten))
            {
                var to = FolderOf(used);
                if (to is null || to == from) continue;
                edges.TryAdd((from, to), $"{Outermost(type).FullName} uses {used.FullName}");
            }
        }
        return edges;
    }

    /// <summary>Every cycle's folders, found by walking from each edge's target back to its source.</summary>
    public static IReadOnlyList<string> Cycles(IEnumerable<(string From, string To)> edges)
    {
        var next = edges.GroupBy(e => e.From).ToDictionary(g => g.Key, g => g.Select(e => e.To).ToHashSet());
        var cycles = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (from, to) in edges)
        {
            var path = PathBetween(next, to, from);
            if (path is null) continue;
            // Name a cycle by its members, starting from the smallest, so each is reported once.
            List<string> members = [from, .. path.Take(path.Count - 1)];
            var start = members.IndexOf(members.Min(StringComparer.Ordinal)!);
            cycles.Add(string.Join(" -> ", members.Skip(start).Concat(members.Take(start)).Append(members[start])));
        }
        return [.. cycles];
    }

    private static List<string>? PathBetween(Dictionary<string, HashSet<string>> next, string start, string goal)
    {
        var previous = new Dictionary<string, string?> { [start] = null };
        var queue = new Queue<string>([start]);
        while (queue.TryDequeue(out var node))
        {
            if (node == goal)
            {
                var path = new List<string>();
                for (string? at = goal; at is not null; at = previous[at]) path.Add(at);
                path.Reverse();
                return path;
            }
            foreach (var n in next.GetValueOrDefault(node) ?? [])
                if (previous.TryAdd(n, node)) queue.Enqueue(n);
        }
        return null;
    }

    private static string? FolderOf(Type type)
    {
        var ns = Outermost(type).Namespace;
        if (ns is null || !ns.StartsWith(Root, StringComparison.Ordinal)) return null;
        var rest = ns[Root.Length..];
        var dot = rest.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? rest : rest[..dot];
    }

    private static Type Outermost(Type type)
    {
        while (type.DeclaringType is { } outer) type = outer;
        return type;
    }

    private static IEnumerable<Type> Flatten(Type type)
    {
        if (type.HasElementType)
        {
            foreach (var t in Flatten(type.GetElementType()!)) yield return t;
            yield break;
        }
        if (type.IsGenericParameter) yield break;
        yield return type;
        if (type.IsGenericType)
            foreach (var argument in type.GetGenericArguments())
                foreach (var t in Flatten(argument)) yield return t;
    }

    private static IEnumerable<Type> Uses(Type type)
    {
        const BindingFlags all = BindingFlags.DeclaredOnly | BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;
        if (type.BaseType is { } baseType) yield return baseType;
        foreach (var i in type.GetInterfaces()) yield return i;
        foreach (var field in type.GetFields(all)) yield return field.FieldType;
        foreach (var property in type.GetProperties(all)) yield return property.PropertyType;
        foreach (var method in type.GetMethods(all).Cast<MethodBase>().Concat(type.GetConstructors(all)))
        {
            if (method is MethodInfo info) yield return info.ReturnType;
            foreach (var parameter in method.GetParameters()) yield return parameter.ParameterType;
            foreach (var used in BodyUses(method)) yield return used;
        }
    }

    /// <summary>The types named by the tokens of a method body's IL.</summary>
    private static IEnumerable<Type> BodyUses(MethodBase method)
    {
        byte[]? il;
        try { il = method.GetMethodBody()?.GetILAsByteArray(); }
        catch (InvalidOperationException) { il = null; }
        if (il is null) return [];
        var typeArguments = method.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        var methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        var found = new List<Type>();
        for (var i = 0; i < il.Length;)
        {
            short value = il[i++];
            if (value == 0xFE) value = (short)(0xFE00 | il[i++]);
            if (!OpCodesByValue.TryGetValue(value, out var code)) break;
            switch (code.OperandType)
            {
                case OperandType.InlineField or OperandType.InlineMethod or OperandType.InlineType or OperandType.InlineTok:
                    var token = BitConverter.ToInt32(il, i);
                    i += 4;
                    try
                    {
                        switch (method.Module.ResolveMember(token, typeArguments, methodArguments))
                        {
                            case Type t: found.Add(t); break;
                            case MethodInfo m:
                                if (m.DeclaringType is { } owner) found.Add(owner);
                                found.Add(m.ReturnType);
                                if (m.IsGenericMethod) found.AddRange(m.GetGenericArguments());
                                break;
                            case MemberInfo member when member.DeclaringType is { } declaring: found.Add(declaring); break;
                        }
                    }
                    catch (ArgumentException) { /* a token of another module's generic context */ }
                    break;
                case OperandType.InlineSwitch:
                    i += 4 + BitConverter.ToInt32(il, i) * 4;
                    break;
                case OperandType.InlineI8 or OperandType.InlineR:
                    i += 8;
                    break;
                case OperandType.InlineNone:
                    break;
                case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar:
                    i += 1;
                    break;
                case OperandType.InlineVar:
                    i += 2;
                    break;
                default:
                    i += 4;
                    break;
            }
        }
        return found;
    }
}
