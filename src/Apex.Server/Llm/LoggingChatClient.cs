using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Apex.Server.Llm;

/// <summary>Logs every model call's duration and usage; prompts and outputs only at Trace.</summary>
internal sealed partial class LoggingChatClient(IChatClient inner, ILogger<LoggingChatClient> logger) : DelegatingChatClient(inner)
{
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        var response = await base.GetResponseAsync(messages, options, cancellationToken);
        LogCall(logger, response.ModelId, Stopwatch.GetElapsedTime(started).TotalMilliseconds, response.Usage?.TotalTokenCount);
        if (logger.IsEnabled(LogLevel.Trace)) LogOutput(logger, response.Text);
        return response;
    }

    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var started = Stopwatch.GetTimestamp();
        if (logger.IsEnabled(LogLevel.Trace)) LogPrompt(logger, string.Join("\n", messages.Select(m => $"{m.Role}: {m.Text}")));
        string? model = null;
        await foreach (var update in base.GetStreamingResponseAsync(messages, options, cancellationToken))
        {
            model ??= update.ModelId;
            yield return update;
        }
        LogCall(logger, model, Stopwatch.GetElapsedTime(started).TotalMilliseconds, null);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Model {Model} answered in {DurationMs} ms ({Tokens} tokens)")]
    private static partial void LogCall(ILogger logger, string? model, double durationMs, long? tokens);

    [LoggerMessage(Level = LogLevel.Trace, Message = "Prompt: {Prompt}")]
    private static partial void LogPrompt(ILogger logger, string prompt);

    [LoggerMessage(Level = LogLevel.Trace, Message = "Output: {Output}")]
    private static partial void LogOutput(ILogger logger, string output);
}
