using Apex.Server.Execution;
using Microsoft.Extensions.AI;

namespace Apex.Server.Llm;

/// <summary>
/// Checks the run's budget before every model call, inside the function-invocation loop (so the second and later turns of
/// an agent are checked too). The run's <see cref="RunBudget"/> travels in the call's options.
/// </summary>
internal sealed class BudgetChatClient(IChatClient inner) : DelegatingChatClient(inner)
{
    public const string OptionKey = "apex.budget";

    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Check(options);
        return base.GetResponseAsync(messages, options, cancellationToken);
    }

    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        Check(options);
        return base.GetStreamingResponseAsync(messages, options, cancellationToken);
    }

    private static void Check(ChatOptions? options)
    {
        if (options?.AdditionalProperties?.TryGetValue(OptionKey, out var value) == true && value is RunBudget budget) budget.EnsureWithinBudget();
    }
}
