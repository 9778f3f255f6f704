using System.Net;
using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace Apex.Server.Llm;

/// <summary>
/// An <see cref="IChatClient"/> for any OpenAI-compatible chat completions endpoint (OpenAI, Azure
/// OpenAI's v1 API, Ollama, vLLM, LM Studio…), streaming, with tool calls. The Microsoft.Extensions.AI.OpenAI
/// adapter is not in the package mirror, so this is the part of it the agents need.
/// </summary>
internal sealed class OpenAiCompatibleChatClient(HttpClient http, string model) : IChatClient
{
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "chat/completions")
        {
            Content = new ByteArrayContent(RequestBody(messages, options)) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
            throw new ModelCallException(response.StatusCode, await response.Content.ReadAsStringAsync(cancellationToken));

        // Tool calls arrive in pieces: id and name first, then fragments of the arguments, by index.
        var calls = new SortedDictionary<int, (string Id, string Name, StringBuilder Arguments)>();
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        await foreach (var item in System.Net.ServerSentEvents.SseParser.Create(stream).EnumerateAsync(cancellationToken))
        {
            if (item.Data == "[DONE]") break;
            using var chunk = JsonDocument.Parse(item.Data);
            var root = chunk.RootElement;
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails
                {
                    InputTokenCount = usage.TryGetProperty("prompt_tokens", out var p) ? p.GetInt64() : null,
                    OutputTokenCount = usage.TryGetProperty("completion_tokens", out var c) ? c.GetInt64() : null,
                    TotalTokenCount = usage.TryGetProperty("total_tokens", out var t) ? t.GetInt64() : null,
                })]) { ModelId = model };
            }
            if (!root.TryGetProperty("choices", out var choices) || choices.GetArrayLength() == 0) continue;
            var delta = choices[0].GetProperty("delta");
            if (delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String && content.GetString() is { Length: > 0 } text)
                yield return new ChatResponseUpdate(ChatRole.Assistant, text) { ModelId = model };
            if (delta.TryGetProperty("tool_calls", out var toolCalls))
            {
                foreach (var call in toolCalls.EnumerateArray())
                {
                    var index = call.TryGetProperty("index", out var i) ? i.GetInt32() : 0;
                    if (!calls.TryGetValue(index, out var current)) current = ("", "", new StringBuilder());
                    if (call.TryGetProperty("id", out var id) && id.GetString() is { Length: > 0 } callId) current.Id = callId;
                    if (call.TryGetProperty("function", out var function))
                    {
                        if (function.TryGetProperty("name", out var name) && name.GetString() is { Length: > 0 } callName) current.Name = callName;
                        if (function.TryGetProperty("arguments", out var arguments)) current.Arguments.Append(arguments.GetString());
                    }
                    calls[index] = current;
                }
            }
        }
        if (calls.Count > 0)
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, [.. calls.Values.Select(c =>
                (AIContent)FunctionCallContent.CreateFromParsedArguments(c.Arguments.Length == 0 ? "{}" : c.Arguments.ToString(), c.Id, c.Name,
                    json => JsonSerializer.Deserialize<Dictionary<string, object?>>(json, AIJsonUtilities.DefaultOptions)))])
            { ModelId = model, FinishReason = ChatFinishReason.ToolCalls };
        }
    }

    private byte[] RequestBody(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("model", options?.ModelId ?? model);
            json.WriteBoolean("stream", true);
            json.WriteStartObject("stream_options");
            json.WriteBoolean("include_usage", true);
            json.WriteEndObject();
            json.WriteStartArray("messages");
            foreach (var message in messages) WriteMessage(json, message);
            json.WriteEndArray();
            if (options?.ResponseFormat is ChatResponseFormatJson format)
            {
                json.WriteStartObject("response_format");
                if (format.Schema is { } schema)
                {
                    json.WriteString("type", "json_schema");
                    json.WriteStartObject("json_schema");
                    json.WriteString("name", format.SchemaName ?? "result");
                    json.WritePropertyName("schema");
                    schema.WriteTo(json);
                    json.WriteEndObject();
                }
                else
                {
                    json.WriteString("type", "json_object");
                }
                json.WriteEndObject();
            }
            var tools = options?.Tools?.OfType<AIFunctionDeclaration>().ToList() ?? [];
            if (tools.Count > 0)
            {
                json.WriteStartArray("tools");
                foreach (var tool in tools)
                {
                    json.WriteStartObject();
                    json.WriteString("type", "function");
                    json.WriteStartObject("function");
                    json.WriteString("name", tool.Name);
                    json.WriteString("description", tool.Description);
                    json.WritePropertyName("parameters");
                    tool.JsonSchema.WriteTo(json);
                    json.WriteEndObject();
                    json.WriteEndObject();
                }
                json.WriteEndArray();
            }
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static void WriteMessage(Utf8JsonWriter json, ChatMessage message)
    {
        var results = message.Contents.OfType<FunctionResultContent>().ToList();
        if (results.Count > 0)
        {
            // Each tool result is its own "tool" message in this API.
            foreach (var result in results)
            {
                json.WriteStartObject();
                json.WriteString("role", "tool");
                json.WriteString("tool_call_id", result.CallId);
                json.WriteString("content", result.Result is JsonElement element ? element.GetRawText() : JsonSerializer.Serialize(result.Result, AIJsonUtilities.DefaultOptions));
                json.WriteEndObject();
            }
            return;
        }
        json.WriteStartObject();
        json.WriteString("role", message.Role.Value);
        var text = string.Concat(message.Contents.OfType<TextContent>().Select(t => t.Text));
        var calls = message.Contents.OfType<FunctionCallContent>().ToList();
        if (text.Length > 0 || calls.Count == 0) json.WriteString("content", text);
        else json.WriteNull("content");
        if (calls.Count > 0)
        {
            json.WriteStartArray("tool_calls");
            foreach (var call in calls)
            {
                json.WriteStartObject();
                json.WriteString("id", call.CallId);
                json.WriteString("type", "function");
                json.WriteStartObject("function");
                json.WriteString("name", call.Name);
                json.WriteString("arguments", JsonSerializer.Serialize(call.Arguments ?? new Dictionary<string, object?>(), AIJsonUtilities.DefaultOptions));
                json.WriteEndObject();
                json.WriteEndObject();
            }
            json.WriteEndArray();
        }
        json.WriteEndObject();
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    public void Dispose() => http.Dispose();
}

/// <summary>The model endpoint answered with an error status.</summary>
internal sealed class ModelCallException(HttpStatusCode status, string body) : Exception($"The model endpoint answered {(int)status}: {body}")
{
    public HttpStatusCode Status { get; } = status;

    public bool IsTransient => Status is HttpStatusCode.TooManyRequests or HttpStatusCode.RequestTimeout || (int)Status >= 500;
}

/// <summary>Retries a model call that failed before streaming anything, with exponential backoff.</summary>
internal sealed class RetryingChatClient(IChatClient inner, int maxAttempts, TimeProvider time) : DelegatingChatClient(inner)
{
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var list = messages as IList<ChatMessage> ?? messages.ToList();
        for (var attempt = 1; ; attempt++)
        {
            var enumerator = base.GetStreamingResponseAsync(list, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
            ChatResponseUpdate? first;
            try
            {
                first = await enumerator.MoveNextAsync() ? enumerator.Current : null;
            }
            catch (Exception ex) when (attempt < maxAttempts && ex is HttpRequestException or ModelCallException { IsTransient: true } && !cancellationToken.IsCancellationRequested)
            {
                await enumerator.DisposeAsync();
                await Task.Delay(TimeSpan.FromMilliseconds(250 * Math.Pow(2, attempt - 1)), time, cancellationToken);
                continue;
            }
            // Once something streamed, a failure is the caller's: replaying would duplicate what was shown.
            await using (enumerator)
            {
                if (first is null) yield break;
                yield return first;
                while (await enumerator.MoveNextAsync()) yield return enumerator.Current;
            }
            yield break;
        }
    }
}
