using System.Text.Json;
using Apex.Client;
using Microsoft.Extensions.AI;

namespace Apex.Server.Agents;

/// <summary>
/// A waiting agent's conversation as it is stored in its run's checkpoint and read back by the node that resumes it: text, tool
/// calls and tool results (what the model needs to go on); usage and other contents are not kept.
/// </summary>
internal static class Checkpoints
{
    public static IReadOnlyList<CheckpointMessage> From(IEnumerable<ChatMessage> messages, Func<string, bool> deferred)
    {
        var stored = new List<CheckpointMessage>();
        foreach (var message in messages)
        {
            var text = string.Concat(message.Contents.OfType<TextContent>().Select(t => t.Text));
            List<CheckpointCall> calls = [.. message.Contents.OfType<FunctionCallContent>()
                .Select(c => new CheckpointCall(c.CallId, c.Name, JsonSerializer.SerializeToElement(c.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions)))];
            // A deferred call's placeholder is not a result: the call runs (or is rejected) when the agent resumes.
            List<CheckpointResult> results = [.. message.Contents.OfType<FunctionResultContent>().Where(r => !deferred(r.CallId))
                .Select(r => new CheckpointResult(r.CallId, r.Result is JsonElement e ? e : JsonSerializer.SerializeToElement(r.Result, AIJsonUtilities.DefaultOptions)))];
            if (text.Length == 0 && calls.Count == 0 && results.Count == 0) continue;
            stored.Add(new CheckpointMessage(message.Role.Value, text.Length == 0 ? null : text, calls.Count == 0 ? null : calls, results.Count == 0 ? null : results));
        }
        return stored;
    }

    public static ChatMessage ToMessage(CheckpointMessage stored)
    {
        var contents = new List<AIContent>();
        if (stored.Text is { Length: > 0 } text) contents.Add(new TextContent(text));
        foreach (var call in stored.Calls ?? []) contents.Add(new FunctionCallContent(call.CallId, call.Name, ArgumentsOf(call.Arguments)));
        foreach (var result in stored.Results ?? []) contents.Add(new FunctionResultContent(result.CallId, result.Result));
        return new ChatMessage(new ChatRole(stored.Role), contents);
    }

    public static Dictionary<string, object?> ArgumentsOf(string json)
    {
        using var document = JsonDocument.Parse(json);
        return ArgumentsOf(document.RootElement.Clone());
    }

    public static Dictionary<string, object?> ArgumentsOf(JsonElement arguments) =>
        arguments.ValueKind == JsonValueKind.Object ? arguments.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone(), StringComparer.Ordinal) : [];
}
