using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using Apex.Client;
using Apex.Server.Events;
using Apex.Server.Execution;
using Apex.Server.Runs;
using Apex.Server.Storage;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Apex.Server.Interop;

/// <summary>A run a door started: its thread and run, and the thread's seq before it, from which its events are followed.</summary>
internal sealed record DoorRun(string ThreadId, string RunId, long AfterSeq);

/// <summary>A turn of a conversation a client sent along with its request (OpenAI's or AG-UI's earlier messages).</summary>
internal sealed record EarlierTurn(string Role, string Text);

/// <summary>
/// What every door other than REST and <c>/ws</c> shares (<c>/mcp</c>, <c>/api/agui</c>, <c>/v1</c>): it submits the request as an
/// ordinary run through the <see cref="RunCoordinator"/>, follows that run's events with the one <see cref="ThreadFollower"/> up to
/// its terminal event, cancels the run when the client goes away before that, and reads the stored answer.
/// </summary>
internal sealed class DoorRuns(RunCoordinator coordinator, ThreadFollower follower, IThreadStore threads, IOptions<LimitsOptions> limits)
{
    /// <summary>
    /// Submits <paramref name="request"/> to the user's thread <paramref name="threadId"/> (null: a new thread). A new thread gets
    /// the client's earlier turns, newest first as far as the message limit allows, written after the request as context: Apex
    /// stores only what it was sent, so a conversation held by the client reaches the agents in the message itself. A thread that
    /// goes on keeps its own stored history and the earlier turns are not repeated. <paramref name="agent"/> names the agent or team (null: the shipped team).
    /// </summary>
    public async Task<DoorSubmission> SubmitAsync(string userId, string? threadId, string request, IReadOnlyList<EarlierTurn> earlier, string? agent,
        CancellationToken cancellationToken)
    {
        long from = 0;
        var content = threadId is null ? WithContext(request, earlier, limits.Value.MaxMessageChars) : request;
        var submitted = await coordinator.SubmitAsync(userId, threadId, content, null, agent, (thread, _) =>
        {
            from = thread.LastSeq;
            return ValueTask.CompletedTask;
        }, cancellationToken);
        return submitted switch
        {
            Submission.Accepted accepted => new DoorSubmission.Started(new DoorRun(accepted.Thread.Id, accepted.Run.Id, from)),
            Submission.Refused refused => new DoorSubmission.Refused(refused.Code, refused.Message),
            _ => throw new InvalidOperationException("Submission is a closed type."),
        };
    }

    /// <summary>Whether the user has this thread (another user's thread is answered as one that does not exist).</summary>
    public async Task<bool> OwnsThreadAsync(string userId, string threadId, CancellationToken cancellationToken) =>
        await threads.GetThreadAsync(userId, threadId, cancellationToken) is not null;

    /// <summary>
    /// The run's events up to and including its terminal one. When the caller stops listening before that (the client
    /// disconnected: <paramref name="cancellationToken"/> is the request's), the run is cancelled with <see cref="CancelReasons.ClientAborted"/>.
    /// </summary>
    public async IAsyncEnumerable<ApexEvent> FollowAsync(string userId, DoorRun run, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var ended = false;
        try
        {
            await foreach (var evt in follower.FollowAsync(userId, run.ThreadId, run.AfterSeq, cancellationToken))
            {
                if (evt.RunId != run.RunId) continue;
                ended = evt.IsTerminal;
                yield return evt;
                if (ended) yield break;
            }
            // The follower ends quietly when its caller goes; a door's caller still sees the cancellation it asked for.
            cancellationToken.ThrowIfCancellationRequested();
        }
        finally
        {
            if (!ended) await coordinator.CancelAsync(userId, run.RunId, CancelReasons.ClientAborted, CancellationToken.None);
        }
    }

    /// <summary>The stored answer of a completed run.</summary>
    public async Task<string> AnswerAsync(string userId, RunCompleted completed, CancellationToken cancellationToken) =>
        (await threads.GetMessageAsync(userId, completed.Data.MessageId, cancellationToken))?.Content ?? "";

    /// <summary>The text of a message's content: a string, or the text parts of an array of parts (OpenAI's and AG-UI's shape).</summary>
    public static string TextOf(JsonElement? content) => content switch
    {
        { ValueKind: JsonValueKind.String } text => text.GetString()!.Trim(),
        { ValueKind: JsonValueKind.Array } parts => string.Join("\n", parts.EnumerateArray()
            .Where(p => p.ValueKind == JsonValueKind.Object && p.TryGetProperty("type", out var type) && type.GetString() is "text" or "input_text" or "output_text"
                && p.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String)
            .Select(p => p.GetProperty("text").GetString())).Trim(),
        _ => "",
    };

    /// <summary>The HTTP status of a refused submission, as the REST API answers it.</summary>
    public static int StatusFor(string code) => code switch
    {
        "not_found" => StatusCodes.Status404NotFound,
        "thread_busy" or "queue_full" => StatusCodes.Status409Conflict,
        "rate_limited" => StatusCodes.Status429TooManyRequests,
        _ => StatusCodes.Status400BadRequest,
    };

    private static string WithContext(string request, IReadOnlyList<EarlierTurn> earlier, int maxChars)
    {
        if (earlier.Count == 0) return request;
        const string Heading = "\n\n---\nEarlier in this conversation (sent by the client, oldest first):\n";
        var budget = maxChars - request.Length - Heading.Length;
        var kept = new List<string>();
        foreach (var turn in earlier.Reverse())
        {
            var line = $"{turn.Role}: {turn.Text.Trim()}\n";
            if (line.Length > budget) break;
            budget -= line.Length;
            kept.Add(line);
        }
        if (kept.Count == 0) return request;
        var text = new StringBuilder(request).Append(Heading);
        for (var i = kept.Count - 1; i >= 0; i--) text.Append(kept[i]);
        return text.ToString().TrimEnd();
    }
}

/// <summary>What became of a door's request: a started run, or refused with the coordinator's code.</summary>
internal abstract record DoorSubmission
{
    private DoorSubmission() { }

    public sealed record Started(DoorRun Run) : DoorSubmission;

    public sealed record Refused(string Code, string Message) : DoorSubmission;
}

internal static class DoorHosting
{
    /// <summary>What the doors that translate another protocol into runs share (<c>/mcp</c>'s ask_apex, <c>/api/agui</c>, <c>/v1</c>).</summary>
    public static WebApplicationBuilder AddApexDoors(this WebApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<DoorRuns>();
        return builder;
    }
}
