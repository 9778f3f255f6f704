using System.Collections.Immutable;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Apex.Server.Agents;

/// <summary>What is wrong with a definition: the field at fault (a path such as <c>agents[0].tools[1]</c>), and the agent it belongs to.</summary>
internal sealed record DefinitionError(string Field, string Message, string? Agent = null)
{
    /// <summary>The error as one line: <c>agent 'triage', field agents[0].tools[1]: no tool is named 'x'</c>.</summary>
    public override string ToString() => $"{(Agent is null ? "" : $"agent '{Agent}', ")}field {Field}: {Message}";
}

/// <summary>
/// Reads and validates agent and team definitions (the shipped team's file, a user's <c>/api/agents</c> and <c>/api/teams</c>
/// bodies): every field is checked and every problem reported with the field at fault; unknown fields are refused, so a
/// misspelt one is never silently ignored. <paramref name="checkTool"/> says why a tool name is unusable (null: it is usable).
/// </summary>
internal sealed partial class DefinitionReader(Func<string, string?> checkTool, TimeSpan maxTimeout, int maxTurns, bool offersConfiguredTools)
{
    public const int MaxAgents = 16;
    public const int MaxTools = 32;
    public const int MaxInstructionChars = 20_000;
    public const int MaxNameChars = 40;

    private static readonly ImmutableArray<string> AgentFields = ["name", "purpose", "instructions", "tools", "output_schema", "timeout_seconds", "max_turns", "approval"];
    private static readonly ImmutableArray<string> TeamFields = ["name", "description", "supervisor", "agents"];
    private static readonly ImmutableArray<string> SchemaTypes = ["object", "array", "string", "number", "integer", "boolean", "null"];

    /// <summary>Reads a definition without checking tool names or limits (one stored earlier and validated then).</summary>
    public static DefinitionReader Trusting { get; } = new(_ => null, TimeSpan.MaxValue, int.MaxValue, offersConfiguredTools: false);

    public (TeamDefinition? Team, IReadOnlyList<DefinitionError> Errors) ReadTeam(JsonElement json)
    {
        var errors = new List<DefinitionError>();
        if (json.ValueKind != JsonValueKind.Object) return (null, [new("$", "a team definition is a JSON object.")]);
        Unknown(json, TeamFields, "", errors);
        var name = Name(json, "name", errors);
        var description = OptionalString(json, "description", "description", errors);
        var agents = new List<AgentDefinition>();
        if (!json.TryGetProperty("agents", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
            errors.Add(new("agents", "a team lists its agents (at least one)."));
        else if (list.GetArrayLength() > MaxAgents)
            errors.Add(new("agents", $"a team has at most {MaxAgents} agents."));
        else
        {
            var i = 0;
            foreach (var item in list.EnumerateArray())
            {
                var (agent, agentErrors) = ReadAgent(item, $"agents[{i}].");
                errors.AddRange(agentErrors);
                if (agent is not null)
                {
                    if (agents.Any(a => a.Name == agent.Name)) errors.Add(new($"agents[{i}].name", $"two agents are named '{agent.Name}'.", agent.Name));
                    else agents.Add(agent);
                }
                i++;
            }
        }
        var supervisor = json.TryGetProperty("supervisor", out var s) ? Supervisor(s, agents, errors) : null;
        if (supervisor is null && !json.TryGetProperty("supervisor", out _)) errors.Add(new("supervisor", "a team names its supervisor policy (sequence or router)."));
        return errors.Count > 0 || name is null || supervisor is null ? (null, errors) : (new TeamDefinition(name, description, [.. agents], supervisor), errors);
    }

    public (AgentDefinition? Agent, IReadOnlyList<DefinitionError> Errors) ReadAgent(JsonElement json) => ReadAgent(json, "");

    private (AgentDefinition? Agent, List<DefinitionError> Errors) ReadAgent(JsonElement json, string at)
    {
        var errors = new List<DefinitionError>();
        if (json.ValueKind != JsonValueKind.Object) return (null, [new(at.Length == 0 ? "$" : at.TrimEnd('.'), "an agent definition is a JSON object.")]);
        var name = Name(json, at + "name", errors);
        var label = name;
        var count = errors.Count;
        Unknown(json, AgentFields, at, errors);
        var purpose = OptionalString(json, "purpose", at + "purpose", errors) ?? "Answering";
        var instructions = Instructions(json, at + "instructions", errors);
        var tools = new List<string>();
        if (json.TryGetProperty("tools", out var t))
        {
            if (t.ValueKind != JsonValueKind.Array) errors.Add(new(at + "tools", "tools is a list of tool names."));
            else if (t.GetArrayLength() > MaxTools) errors.Add(new(at + "tools", $"an agent has at most {MaxTools} tools."));
            else
            {
                var i = 0;
                foreach (var tool in t.EnumerateArray())
                {
                    var field = $"{at}tools[{i++}]";
                    if (tool.ValueKind != JsonValueKind.String || tool.GetString() is not { Length: > 0 } toolName) errors.Add(new(field, "a tool is named by a string."));
                    else if (tools.Contains(toolName)) errors.Add(new(field, $"'{toolName}' is listed twice."));
                    else if (checkTool(toolName) is { } why) errors.Add(new(field, why));
                    else tools.Add(toolName);
                }
            }
        }
        var schema = json.TryGetProperty("output_schema", out var o) && o.ValueKind != JsonValueKind.Null ? OutputSchema(o, at + "output_schema", errors) : null;
        TimeSpan? timeout = null;
        if (json.TryGetProperty("timeout_seconds", out var ts) && ts.ValueKind != JsonValueKind.Null)
        {
            if (ts.ValueKind != JsonValueKind.Number || !ts.TryGetDouble(out var seconds) || seconds <= 0 || TimeSpan.FromSeconds(seconds) > maxTimeout)
                errors.Add(new(at + "timeout_seconds", $"timeout_seconds is a number of seconds above 0 and at most {maxTimeout.TotalSeconds:0.#} (Apex:Limits:AgentTimeout)."));
            else timeout = TimeSpan.FromSeconds(seconds);
        }
        int? turns = null;
        if (json.TryGetProperty("max_turns", out var mt) && mt.ValueKind != JsonValueKind.Null)
        {
            if (mt.ValueKind != JsonValueKind.Number || !mt.TryGetInt32(out var n) || n < 1 || n > maxTurns)
                errors.Add(new(at + "max_turns", $"max_turns is a whole number from 1 to {maxTurns} (Apex:Limits:MaxModelTurnsPerAgent)."));
            else turns = n;
        }
        var approval = json.TryGetProperty("approval", out var ap) && ap.ValueKind != JsonValueKind.Null ? Approval(ap, at + "approval", tools, errors) : [];
        if (label is not null) for (var i = count; i < errors.Count; i++) errors[i] = errors[i] with { Agent = label };
        return errors.Count > 0 || name is null || instructions is null ? (null, errors)
            : (new AgentDefinition(name, purpose, instructions, [.. tools], schema) { Timeout = timeout, MaxTurns = turns, OffersConfiguredTools = offersConfiguredTools, ApprovalRequired = approval }, errors);
    }

    /// <summary>
    /// <c>{"required": ["tool", "mcp__server__*"]}</c>: each entry one of the agent's own tools, or a prefix ending in <c>*</c> that
    /// matches at least one of them (a whole MCP server's); an entry that matches none is refused, so a misspelt one never lets a tool run unasked.
    /// </summary>
    private static ImmutableArray<string> Approval(JsonElement json, string at, List<string> tools, List<DefinitionError> errors)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new(at, "approval is an object: {\"required\": [tool names]}."));
            return [];
        }
        Unknown(json, ["required"], at + ".", errors);
        if (!json.TryGetProperty("required", out var required) || required.ValueKind != JsonValueKind.Array)
        {
            errors.Add(new(at + ".required", "approval.required is a list of tool names (or prefixes ending in '*')."));
            return [];
        }
        var patterns = new List<string>();
        var i = 0;
        foreach (var item in required.EnumerateArray())
        {
            var field = $"{at}.required[{i++}]";
            if (item.ValueKind != JsonValueKind.String || item.GetString() is not { Length: > 0 } pattern) errors.Add(new(field, "a tool is named by a string."));
            else if (patterns.Contains(pattern)) errors.Add(new(field, $"'{pattern}' is listed twice."));
            else if (!tools.Any(t => AgentDefinition.ApprovalMatches([pattern], t)))
                errors.Add(new(field, pattern.EndsWith('*') ? $"'{pattern}' matches none of the agent's tools." : $"'{pattern}' is not one of the agent's tools."));
            else patterns.Add(pattern);
        }
        return [.. patterns];
    }

    private static SupervisorPolicy? Supervisor(JsonElement json, List<AgentDefinition> agents, List<DefinitionError> errors)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new("supervisor", "the supervisor is a JSON object with its policy."));
            return null;
        }
        var policy = json.TryGetProperty("policy", out var p) && p.ValueKind == JsonValueKind.String ? p.GetString() : null;
        switch (policy)
        {
            case "sequence":
            {
                Unknown(json, ["policy", "agents"], "supervisor.", errors);
                var order = json.TryGetProperty("agents", out var a) ? Pipeline(a, "supervisor.agents", agents, null, errors) : [.. agents.Select(x => x.Name)];
                return order is null ? null : new SupervisorPolicy.Sequence(order.Value);
            }
            case "router":
            {
                Unknown(json, ["policy", "triage", "fields", "routes", "otherwise"], "supervisor.", errors);
                var triageName = json.TryGetProperty("triage", out var tr) && tr.ValueKind == JsonValueKind.String ? tr.GetString()! : null;
                var triage = triageName is null ? null : agents.FirstOrDefault(x => x.Name == triageName);
                if (triageName is null) errors.Add(new("supervisor.triage", "a router names its triage agent."));
                else if (triage is null) errors.Add(new("supervisor.triage", $"no agent of the team is named '{triageName}'."));
                else if (triage.OutputSchema is null) errors.Add(new("supervisor.triage", $"the triage agent '{triageName}' has no output_schema, so it has no fields to route on.", triageName));
                var fields = Fields(json, triage, errors);
                var routes = new List<RouteRule>();
                if (!json.TryGetProperty("routes", out var r) || r.ValueKind != JsonValueKind.Array) errors.Add(new("supervisor.routes", "a router lists its routes."));
                else
                {
                    var i = 0;
                    foreach (var route in r.EnumerateArray())
                    {
                        if (Route(route, $"supervisor.routes[{i++}]", agents, triageName, fields, errors) is { } rule) routes.Add(rule);
                    }
                }
                var otherwise = json.TryGetProperty("otherwise", out var ow) ? Pipeline(ow, "supervisor.otherwise", agents, triageName, errors) : null;
                if (!json.TryGetProperty("otherwise", out _)) errors.Add(new("supervisor.otherwise", "a router names the agents that run when no route matches."));
                return triage is null || otherwise is null ? null : new SupervisorPolicy.Router(triage.Name, fields, [.. routes], otherwise.Value);
            }
            default:
                errors.Add(new("supervisor.policy", "policy is sequence or router."));
                return null;
        }
    }

    private static ImmutableArray<RouteField> Fields(JsonElement json, AgentDefinition? triage, List<DefinitionError> errors)
    {
        var fields = new List<RouteField>();
        if (!json.TryGetProperty("fields", out var list) || list.ValueKind != JsonValueKind.Array)
        {
            errors.Add(new("supervisor.fields", "a router lists the fields of the triage result it reads."));
            return [];
        }
        var properties = triage?.OutputSchema is { } schema && schema.TryGetProperty("properties", out var p) && p.ValueKind == JsonValueKind.Object ? p : (JsonElement?)null;
        var i = 0;
        foreach (var item in list.EnumerateArray())
        {
            var at = $"supervisor.fields[{i++}]";
            if (item.ValueKind != JsonValueKind.Object)
            {
                errors.Add(new(at, "a field is an object with its name and default."));
                continue;
            }
            Unknown(item, ["name", "label", "values", "default"], at + ".", errors);
            var name = item.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : null;
            if (name is null)
            {
                errors.Add(new(at + ".name", "a field has a name."));
                continue;
            }
            if (triage is not null && (properties is not { } props || !props.TryGetProperty(name, out _)))
                errors.Add(new(at + ".name", $"the triage agent's output_schema has no property '{name}' (an unknown routing field).", triage.Name));
            var values = item.TryGetProperty("values", out var v) ? Strings(v, at + ".values", errors) : [];
            var fallback = item.TryGetProperty("default", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : null;
            if (fallback is null) errors.Add(new(at + ".default", "a field has a default: the value a missing or unknown one reads as."));
            else if (!values.IsEmpty && !values.Contains(fallback)) errors.Add(new(at + ".default", $"'{fallback}' is not one of the field's values."));
            var label = item.TryGetProperty("label", out var l) && l.ValueKind == JsonValueKind.String ? l.GetString()! : name;
            if (fields.Any(f => f.Name == name)) errors.Add(new(at + ".name", $"the field '{name}' is listed twice."));
            else fields.Add(new RouteField(name, label, values, fallback ?? ""));
        }
        return [.. fields];
    }

    private static RouteRule? Route(JsonElement json, string at, List<AgentDefinition> agents, string? triage, ImmutableArray<RouteField> fields, List<DefinitionError> errors)
    {
        if (json.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new(at, "a route is an object with when and then."));
            return null;
        }
        Unknown(json, ["when", "then"], at + ".", errors);
        var when = ImmutableDictionary.CreateBuilder<string, string>(StringComparer.Ordinal);
        if (!json.TryGetProperty("when", out var w) || w.ValueKind != JsonValueKind.Object) errors.Add(new(at + ".when", "a route's when maps fields to values."));
        else
        {
            foreach (var condition in w.EnumerateObject())
            {
                var field = fields.FirstOrDefault(f => f.Name == condition.Name);
                if (field is null) errors.Add(new($"{at}.when.{condition.Name}", $"'{condition.Name}' is not one of the router's fields (an unknown routing field)."));
                else if (condition.Value.ValueKind != JsonValueKind.String) errors.Add(new($"{at}.when.{condition.Name}", "a condition's value is a string."));
                else if (!field.Values.IsEmpty && !field.Values.Contains(condition.Value.GetString()!))
                    errors.Add(new($"{at}.when.{condition.Name}", $"'{condition.Value.GetString()}' is not one of the values of '{field.Name}'."));
                else when[condition.Name] = condition.Value.GetString()!;
            }
        }
        var then = json.TryGetProperty("then", out var t) ? Pipeline(t, at + ".then", agents, triage, errors) : null;
        if (!json.TryGetProperty("then", out _)) errors.Add(new(at + ".then", "a route names the agents that follow triage."));
        return then is null ? null : new RouteRule(when.ToImmutable(), then.Value);
    }

    /// <summary>A list of the team's agents, none twice (that would be a cycle) and not the triage agent, which has already run.</summary>
    private static ImmutableArray<string>? Pipeline(JsonElement json, string at, List<AgentDefinition> agents, string? triage, List<DefinitionError> errors)
    {
        if (json.ValueKind != JsonValueKind.Array || json.GetArrayLength() == 0)
        {
            errors.Add(new(at, "a list of at least one agent name."));
            return null;
        }
        var names = new List<string>();
        var ok = true;
        var i = 0;
        foreach (var item in json.EnumerateArray())
        {
            var field = $"{at}[{i++}]";
            var name = item.ValueKind == JsonValueKind.String ? item.GetString()! : null;
            string? problem = name switch
            {
                null => "an agent is named by a string.",
                _ when agents.All(a => a.Name != name) => $"no agent of the team is named '{name}'.",
                _ when name == triage => $"'{name}' is the triage agent, which runs before the route (a cycle).",
                _ when names.Contains(name) => $"'{name}' is listed twice (a cycle).",
                _ => null,
            };
            if (problem is null) names.Add(name!);
            else
            {
                errors.Add(new(field, problem));
                ok = false;
            }
        }
        return ok ? [.. names] : null;
    }

    private static JsonElement? OutputSchema(JsonElement json, string at, List<DefinitionError> errors)
    {
        var schema = json;
        if (json.ValueKind == JsonValueKind.String)
        {
            try
            {
                using var document = JsonDocument.Parse(json.GetString()!);
                schema = document.RootElement.Clone();
            }
            catch (JsonException ex)
            {
                errors.Add(new(at, $"the schema does not parse as JSON: {ex.Message}"));
                return null;
            }
        }
        var before = errors.Count;
        CheckSchema(schema, at, errors);
        if (errors.Count == before && (!schema.TryGetProperty("type", out var type) || type.GetString() != "object"))
            errors.Add(new(at + ".type", "an agent's result is a JSON object: the schema's type is \"object\"."));
        return errors.Count == before ? Compact(schema) : null;
    }

    /// <summary>The schema without the file's indentation (messages quote parts of it, such as an enum's values).</summary>
    private static JsonElement Compact(JsonElement schema) => JsonWritten.Element(schema.WriteTo);

    /// <summary>The subset of JSON Schema the server checks results against (<see cref="Tools.SchemaValidator"/>).</summary>
    private static void CheckSchema(JsonElement schema, string at, List<DefinitionError> errors)
    {
        if (schema.ValueKind != JsonValueKind.Object)
        {
            errors.Add(new(at, "a schema is a JSON object."));
            return;
        }
        if (schema.TryGetProperty("type", out var type) && (type.ValueKind != JsonValueKind.String || !SchemaTypes.Contains(type.GetString()!)))
            errors.Add(new(at + ".type", $"type is one of {string.Join(", ", SchemaTypes)}."));
        if (schema.TryGetProperty("properties", out var properties))
        {
            if (properties.ValueKind != JsonValueKind.Object) errors.Add(new(at + ".properties", "properties is an object of schemas."));
            else foreach (var property in properties.EnumerateObject()) CheckSchema(property.Value, $"{at}.properties.{property.Name}", errors);
        }
        if (schema.TryGetProperty("required", out var required) && (required.ValueKind != JsonValueKind.Array || required.EnumerateArray().Any(r => r.ValueKind != JsonValueKind.String)))
            errors.Add(new(at + ".required", "required is a list of property names."));
        if (schema.TryGetProperty("items", out var items)) CheckSchema(items, at + ".items", errors);
        if (schema.TryGetProperty("enum", out var values) && values.ValueKind != JsonValueKind.Array) errors.Add(new(at + ".enum", "enum is a list of values."));
        foreach (var bound in new[] { "minimum", "maximum" })
            if (schema.TryGetProperty(bound, out var b) && b.ValueKind != JsonValueKind.Number) errors.Add(new($"{at}.{bound}", $"{bound} is a number."));
    }

    private static string? Instructions(JsonElement json, string at, List<DefinitionError> errors)
    {
        string? text = null;
        if (json.TryGetProperty("instructions", out var i))
        {
            // A string, or a list of lines (easier to read and edit in a file).
            if (i.ValueKind == JsonValueKind.String) text = i.GetString();
            else if (i.ValueKind == JsonValueKind.Array && i.EnumerateArray().All(l => l.ValueKind == JsonValueKind.String)) text = string.Join("\n", i.EnumerateArray().Select(l => l.GetString()));
        }
        if (string.IsNullOrWhiteSpace(text)) errors.Add(new(at, "instructions are a non-empty string or a list of lines."));
        else if (text.Length > MaxInstructionChars) errors.Add(new(at, $"instructions are at most {MaxInstructionChars} characters."));
        else return text;
        return null;
    }

    private static string? Name(JsonElement json, string at, List<DefinitionError> errors)
    {
        var name = json.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
        if (name is null || !NamePattern().IsMatch(name))
            errors.Add(new(at, $"a name is 1 to {MaxNameChars} lower-case letters, digits, '_' or '-', starting with a letter."));
        else if (name == AgentNames.Supervisor) errors.Add(new(at, "'supervisor' is the name of the team's supervisor."));
        else return name;
        return null;
    }

    private static string? OptionalString(JsonElement json, string property, string at, List<DefinitionError> errors)
    {
        if (!json.TryGetProperty(property, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.String && value.GetString()!.Length <= 1000) return value.GetString();
        errors.Add(new(at, $"{property} is a string of at most 1000 characters."));
        return null;
    }

    private static ImmutableArray<string> Strings(JsonElement json, string at, List<DefinitionError> errors)
    {
        if (json.ValueKind == JsonValueKind.Array && json.EnumerateArray().All(v => v.ValueKind == JsonValueKind.String)) return [.. json.EnumerateArray().Select(v => v.GetString()!)];
        errors.Add(new(at, "a list of strings."));
        return [];
    }

    private static void Unknown(JsonElement json, ImmutableArray<string> known, string at, List<DefinitionError> errors)
    {
        foreach (var property in json.EnumerateObject())
            if (!known.Contains(property.Name)) errors.Add(new(at + property.Name, $"unknown field (known: {string.Join(", ", known)})."));
    }

    [GeneratedRegex("^[a-z][a-z0-9_-]{0,39}$")]
    private static partial Regex NamePattern();
}
