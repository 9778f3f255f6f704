using System.ClientModel;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Apex.Server.Llm;

/// <summary>
/// Turns how a model call ended into an honest outcome: a stream must end with a finish reason; <c>length</c> is
/// <see cref="ModelCallException.Truncated"/>, <c>content_filter</c> is <see cref="ModelCallException.ContentFilter"/>;
/// an endpoint error, an open circuit or a broken stream is a <see cref="ModelCallException"/> with a clean message,
/// the provider's own words logged only.
/// </summary>
internal sealed partial class ModelOutcomeChatClient(IChatClient inner, ILogger<ModelOutcomeChatClient> logger) : DelegatingChatClient(inner)
{
    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var updates = base.GetStreamingResponseAsync(messages, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        ChatFinishReason? finish = null;
        while (true)
        {
            ChatResponseUpdate update;
            try
            {
                if (!await updates.MoveNextAsync()) break;
                update = updates.Current;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                throw Describe(ex);
            }
            finish = update.FinishReason ?? finish;
            yield return update;
        }
        if (finish == ChatFinishReason.Length)
            throw new ModelCallException(ModelCallException.Truncated, "The model's answer was cut off at its token limit.");
        if (finish == ChatFinishReason.ContentFilter)
            throw new ModelCallException(ModelCallException.ContentFilter, "The model provider's content filter stopped the answer.");
        if (finish is null)
            throw new ModelCallException(ModelCallException.Error, "The model's stream ended before the model finished its answer.");
    }

    private ModelCallException Describe(Exception ex)
    {
        LogModelFailed(logger, ex);
        return ex switch
        {
            ModelCallException known => known,
            BrokenCircuitException => new(ModelCallException.Unavailable, "The model endpoint has been failing; calls to it are paused for a while.", ex),
            ClientResultException { Status: > 0 } http => new(ModelCallException.Error, $"The model endpoint answered HTTP {http.Status}.", ex),
            HttpRequestException or TimeoutRejectedException => new(ModelCallException.Error, "The model endpoint could not be reached.", ex),
            OperationCanceledException => new(ModelCallException.Error, "The model endpoint did not answer in time.", ex),
            _ => new(ModelCallException.Error, "The model's stream was broken or malformed.", ex),
        };
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A model call failed")]
    private static partial void LogModelFailed(ILogger logger, Exception exception);
}
