using System.Text.Json;
using System.Text.Json.Serialization;

namespace Apex.Client;

// The OpenAI-compatible API under /v1: the subset of OpenAI's wire shapes Apex reads and writes (snake_case like Apex's own).

/// <summary>OpenAI's error body: <c>{ "error": { "message", "type", "param", "code" } }</c>.</summary>
public sealed record OpenAiErrorBody(OpenAiError Error);
/// <summary>An OpenAI-shaped error; <c>param</c> and <c>code</c> are written even when null, as OpenAI does.</summary>
public sealed record OpenAiError(string Message, string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

/// <summary>Answer of <c>GET /v1/models</c>.</summary>
public sealed record OpenAiModelList(IReadOnlyList<OpenAiModel> Data, string Object = "list");
/// <summary>A model: Apex's agent team.</summary>
public sealed record OpenAiModel(string Id, long Created, string OwnedBy, string Object = "model");

/// <summary>A message of a chat completion request; <c>Content</c> is a string or an array of parts (only text parts are read).</summary>
public sealed record OpenAiChatMessage(string Role, JsonElement? Content = null);
/// <summary><c>stream_options</c> of a chat completion request.</summary>
public sealed record OpenAiStreamOptions(bool? IncludeUsage = null);
/// <summary>Body of <c>POST /v1/chat/completions</c> (other fields are accepted and ignored).</summary>
public sealed record OpenAiChatRequest(string? Model, IReadOnlyList<OpenAiChatMessage>? Messages, bool? Stream = null, OpenAiStreamOptions? StreamOptions = null);

/// <summary>Token counts in OpenAI's chat completion accounting.</summary>
public sealed record OpenAiUsage(long PromptTokens, long CompletionTokens, long TotalTokens);
/// <summary>The assistant's message in a completion.</summary>
public sealed record OpenAiAnswer(string Role, string Content);
/// <summary>One choice of a completion.</summary>
public sealed record OpenAiChoice(int Index, OpenAiAnswer Message, string FinishReason);
/// <summary>Answer of <c>POST /v1/chat/completions</c> without streaming.</summary>
public sealed record OpenAiChatCompletion(string Id, long Created, string Model, IReadOnlyList<OpenAiChoice> Choices, OpenAiUsage? Usage, string Object = "chat.completion");
/// <summary>The part of the message a chunk adds.</summary>
public sealed record OpenAiDelta(string? Role = null, string? Content = null);
/// <summary>One choice of a chunk; <c>finish_reason</c> is written (null) until the last chunk, as OpenAI does.</summary>
public sealed record OpenAiChunkChoice(int Index, OpenAiDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);
/// <summary>A <c>chat.completion.chunk</c> of a streamed completion; the usage chunk has no choices.</summary>
public sealed record OpenAiChatChunk(string Id, long Created, string Model, IReadOnlyList<OpenAiChunkChoice> Choices, OpenAiUsage? Usage = null,
    string Object = "chat.completion.chunk");

/// <summary>Body of <c>POST /v1/responses</c>: <c>input</c> is a string or a list of messages (other fields are accepted and ignored).</summary>
public sealed record OpenAiResponseRequest(string? Model, JsonElement? Input, string? Instructions = null, bool? Stream = null);
/// <summary>A piece of a response message's content.</summary>
public sealed record OpenAiOutputText(string Text, string Type = "output_text")
{
    /// <summary>Always empty: Apex's answers carry no citations.</summary>
    public IReadOnlyList<JsonElement> Annotations { get; init; } = [];
}
/// <summary>An output item of a response: the assistant's message.</summary>
public sealed record OpenAiOutputMessage(string Id, string Status, IReadOnlyList<OpenAiOutputText> Content, string Role = "assistant", string Type = "message");
/// <summary>Token counts in the Responses API's accounting.</summary>
public sealed record OpenAiResponseUsage(long InputTokens, long OutputTokens, long TotalTokens);
/// <summary>Why a response failed.</summary>
public sealed record OpenAiResponseError(string Code, string Message);
/// <summary>A <c>response</c> object; status is in_progress, completed or failed.</summary>
public sealed record OpenAiResponse(string Id, long CreatedAt, string Status, string Model, IReadOnlyList<OpenAiOutputMessage> Output,
    OpenAiResponseUsage? Usage = null, OpenAiResponseError? Error = null, string Object = "response");

/// <summary>One event of a streamed response, written with its type as the SSE event name.</summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(OpenAiResponseCreated), OpenAiResponseEvents.Created)]
[JsonDerivedType(typeof(OpenAiOutputItemAdded), OpenAiResponseEvents.OutputItemAdded)]
[JsonDerivedType(typeof(OpenAiContentPartAdded), OpenAiResponseEvents.ContentPartAdded)]
[JsonDerivedType(typeof(OpenAiOutputTextDelta), OpenAiResponseEvents.OutputTextDelta)]
[JsonDerivedType(typeof(OpenAiOutputTextDone), OpenAiResponseEvents.OutputTextDone)]
[JsonDerivedType(typeof(OpenAiContentPartDone), OpenAiResponseEvents.ContentPartDone)]
[JsonDerivedType(typeof(OpenAiOutputItemDone), OpenAiResponseEvents.OutputItemDone)]
[JsonDerivedType(typeof(OpenAiResponseCompleted), OpenAiResponseEvents.Completed)]
[JsonDerivedType(typeof(OpenAiResponseFailed), OpenAiResponseEvents.Failed)]
public abstract record OpenAiResponseEvent
{
    /// <summary>The SSE event name, which is also the <c>type</c> discriminator.</summary>
    [JsonIgnore]
    public string EventName => WireName;

    /// <summary>The event name of the concrete event.</summary>
    protected abstract string WireName { get; }

    /// <summary>The event's place in the stream, from 0.</summary>
    public int SequenceNumber { get; init; }
}

/// <summary>The event names of a streamed response.</summary>
public static class OpenAiResponseEvents
{
    /// <summary>The response was created.</summary>
    public const string Created = "response.created";
    /// <summary>The answer's message item begins.</summary>
    public const string OutputItemAdded = "response.output_item.added";
    /// <summary>The message's text part begins.</summary>
    public const string ContentPartAdded = "response.content_part.added";
    /// <summary>A piece of the answer.</summary>
    public const string OutputTextDelta = "response.output_text.delta";
    /// <summary>The whole answer.</summary>
    public const string OutputTextDone = "response.output_text.done";
    /// <summary>The text part is complete.</summary>
    public const string ContentPartDone = "response.content_part.done";
    /// <summary>The message item is complete.</summary>
    public const string OutputItemDone = "response.output_item.done";
    /// <summary>Terminal: the response completed.</summary>
    public const string Completed = "response.completed";
    /// <summary>Terminal: the run behind the response failed or was cancelled.</summary>
    public const string Failed = "response.failed";
}

/// <summary><c>response.created</c>.</summary>
public sealed record OpenAiResponseCreated(OpenAiResponse Response) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.Created; }
/// <summary><c>response.output_item.added</c>.</summary>
public sealed record OpenAiOutputItemAdded(int OutputIndex, OpenAiOutputMessage Item) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.OutputItemAdded; }
/// <summary><c>response.content_part.added</c>.</summary>
public sealed record OpenAiContentPartAdded(string ItemId, int OutputIndex, int ContentIndex, OpenAiOutputText Part) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.ContentPartAdded; }
/// <summary><c>response.output_text.delta</c>.</summary>
public sealed record OpenAiOutputTextDelta(string ItemId, int OutputIndex, int ContentIndex, string Delta) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.OutputTextDelta; }
/// <summary><c>response.output_text.done</c>.</summary>
public sealed record OpenAiOutputTextDone(string ItemId, int OutputIndex, int ContentIndex, string Text) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.OutputTextDone; }
/// <summary><c>response.content_part.done</c>.</summary>
public sealed record OpenAiContentPartDone(string ItemId, int OutputIndex, int ContentIndex, OpenAiOutputText Part) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.ContentPartDone; }
/// <summary><c>response.output_item.done</c>.</summary>
public sealed record OpenAiOutputItemDone(int OutputIndex, OpenAiOutputMessage Item) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.OutputItemDone; }
/// <summary><c>response.completed</c>.</summary>
public sealed record OpenAiResponseCompleted(OpenAiResponse Response) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.Completed; }
/// <summary><c>response.failed</c>.</summary>
public sealed record OpenAiResponseFailed(OpenAiResponse Response) : OpenAiResponseEvent { /// <inheritdoc/>
    protected override string WireName => OpenAiResponseEvents.Failed; }
