using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using Apex.Client;
using Microsoft.Extensions.AI;

namespace Apex.Server.Agents;

/// <summary>
/// The built-in model: deterministic, no network. It reads the conversation as a real model
/// would (the agent's instructions, the brief, the tools offered, the tool results) and answers
/// the same way: first with <see cref="FunctionCallContent"/> for the tools it wants, then, once
/// the results are back, with the agent's JSON result or the markdown report, streamed.
/// </summary>
internal sealed partial class BuiltInChatClient(TimeSpan delay, TimeProvider time, bool tokens = false) : IChatClient
{
    public const string ModelId = "apex-builtin-1";

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var conversation = messages.ToList();
        var agent = AgentLine().Match(conversation.FirstOrDefault(m => m.Role == ChatRole.System)?.Text ?? "") is { Success: true } m ? m.Groups[1].Value : "general";
        var brief = ParseBrief(conversation.LastOrDefault(x => x.Role == ChatRole.User)?.Text);
        var calls = conversation.SelectMany(x => x.Contents).OfType<FunctionCallContent>().ToDictionary(c => c.CallId, c => c.Name);
        var results = conversation.SelectMany(x => x.Contents).OfType<FunctionResultContent>()
            .Where(r => calls.ContainsKey(r.CallId))
            .GroupBy(r => calls[r.CallId])
            .ToDictionary(g => g.Key, g => ToElement(g.Last().Result));
        var offered = options?.Tools?.OfType<AIFunctionDeclaration>().Select(t => t.Name).ToList() ?? [];

        await PauseAsync(cancellationToken);
        // An agent these rules do not know (a user's own) gets the generic ones: call what it can fill, report what came back.
        var known = agent is AgentNames.Triage or AgentNames.Data or AgentNames.DataHelper or AgentNames.Optimization or AgentNames.Actions or AgentNames.Reporting;
        var declarations = options?.Tools?.OfType<AIFunctionDeclaration>().Select(t => (t.Name, t.JsonSchema)).ToList() ?? [];
        var planned = calls.Count > 0 ? [] : known ? BuiltInAgents.PlanToolCalls(agent, offered, brief) : BuiltInGenericAgent.PlanToolCalls(declarations, brief.Request);
        if (planned.Count > 0)
        {
            var requested = planned.Select((call, i) => (AIContent)new FunctionCallContent($"call_{agent}_{i}", call.Tool, call.Arguments)).ToList();
            requested.Add(Usage(conversation, planned.Sum(c => c.Tool.Length + 2 + c.Arguments.Sum(a => a.Key.Length + (a.Value?.ToString()?.Length ?? 0) + 4))));
            yield return new ChatResponseUpdate(ChatRole.Assistant, requested) { ModelId = ModelId, FinishReason = ChatFinishReason.ToolCalls };
            yield break;
        }

        var answer = !known ? GenericAnswer(options, results, declarations.Count) : agent switch
        {
            AgentNames.Triage => BuiltInAgents.Triage(brief, results, time.GetUtcNow()),
            AgentNames.Data => BuiltInAgents.Data(brief, results),
            AgentNames.DataHelper => BuiltInAgents.DataHelper(results),
            AgentNames.Optimization => BuiltInAgents.Optimization(brief, results),
            AgentNames.Actions => BuiltInAgents.Actions(brief),
            AgentNames.Reporting => ReportWriter.Write(brief.Results),
            _ => throw new InvalidOperationException("Every known agent has its rules."),
        };
        var first = true;
        // The shipped agents' texts a line at a time unless set to stream tokens (Apex:Llm:BuiltInPieces) like a remote model.
        foreach (var chunk in known && !tokens ? Chunks(answer) : BuiltInGenericAgent.Tokens(answer))
        {
            if (!first) await PauseAsync(cancellationToken);
            first = false;
            yield return new ChatResponseUpdate(ChatRole.Assistant, chunk) { ModelId = ModelId };
        }
        yield return new ChatResponseUpdate(ChatRole.Assistant, [Usage(conversation, answer.Length)]) { ModelId = ModelId, FinishReason = ChatFinishReason.Stop };
    }

    /// <summary>The generic answer, or the agent's result schema filled from the tool results.</summary>
    private static string GenericAnswer(ChatOptions? options, Dictionary<string, JsonElement> results, int offered)
    {
        var answer = BuiltInGenericAgent.Answer(results, offered);
        return options?.ResponseFormat is ChatResponseFormatJson { Schema: { } schema } ? BuiltInGenericAgent.Result(schema, results, answer) : answer;
    }

    /// <summary>
    /// What this call read and wrote, in tokens estimated at four characters each (the rule of thumb for English text
    /// with OpenAI's tokenizers): the built-in model has no tokenizer, and says so in the README.
    /// </summary>
    private static UsageContent Usage(List<ChatMessage> conversation, int writtenChars)
    {
        long read = 0;
        foreach (var message in conversation)
            foreach (var content in message.Contents)
                read += content switch
                {
                    TextContent t => t.Text.Length,
                    FunctionResultContent { Result: JsonElement r } => r.GetRawText().Length,
                    FunctionCallContent c => c.Name.Length + 2,
                    _ => 0,
                };
        var input = (read + 3) / 4;
        var output = (writtenChars + 3L) / 4;
        return new UsageContent(new UsageDetails { InputTokenCount = input, OutputTokenCount = output, TotalTokenCount = input + output });
    }

    private async Task PauseAsync(CancellationToken cancellationToken)
    {
        if (delay > TimeSpan.Zero) await Task.Delay(delay, time, cancellationToken);
        else cancellationToken.ThrowIfCancellationRequested();
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose()
    {
    }

    /// <summary>The brief the engine sends; any other text is taken as the request itself.</summary>
    private static AgentBrief ParseBrief(string? text)
    {
        AgentBrief? brief = null;
        if (!string.IsNullOrWhiteSpace(text) && text.TrimStart().StartsWith('{'))
        {
            try { brief = JsonSerializer.Deserialize(text, ApexJsonContext.Default.AgentBrief); }
            catch (JsonException) { /* not a brief: the text is the request */ }
        }
        return brief is { Request: not null } ? brief with { Results = brief.Results ?? new Dictionary<string, JsonElement>(), History = brief.History ?? [] }
            : new AgentBrief(text ?? "", "free", [], new Dictionary<string, JsonElement>());
    }

    private static JsonElement ToElement(object? value) => value switch
    {
        JsonElement e => e,
        _ => default, // the dispatcher always returns a JSON result
    };

    /// <summary>Streams line by line, as a model streams tokens.</summary>
    private static IEnumerable<string> Chunks(string text)
    {
        var start = 0;
        while (start < text.Length)
        {
            var end = text.IndexOf('\n', start);
            end = end < 0 ? text.Length : end + 1;
            yield return text[start..end];
            start = end;
        }
    }

    [GeneratedRegex(@"^Agent:\s*(\w+)", RegexOptions.Multiline)]
    private static partial Regex AgentLine();
}
