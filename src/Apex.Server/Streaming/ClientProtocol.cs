using System.Collections.Frozen;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Execution;
using Apex.Server.Runs;
using Apex.Server.Storage;

namespace Apex.Server.Streaming;

/// <summary>
/// The <c>/ws</c> protocol: a table from client frame type to its handler. Each handler checks its payload and acts
/// for the connection's user only; a bad frame gets an <c>error</c> frame and the socket stays usable.
/// </summary>
internal sealed class ClientProtocol
{
    private readonly FrozenDictionary<string, Func<WebSocketConnection, ClientFrame, CancellationToken, Task>> _handlers;
    private readonly RunCoordinator _coordinator;
    private readonly IThreadStore _threads;
    private readonly IRunStore _runs;
    private readonly TimeProvider _time;
    private readonly TokenService _tokens;

    public ClientProtocol(RunCoordinator coordinator, IThreadStore threads, IRunStore runs, TokenService tokens, TimeProvider time)
    {
        _tokens = tokens;
        _coordinator = coordinator;
        _threads = threads;
        _runs = runs;
        _time = time;
        _handlers = new Dictionary<string, Func<WebSocketConnection, ClientFrame, CancellationToken, Task>>
        {
            ["user_message"] = UserMessageAsync,
            ["start_agent"] = UserMessageAsync,
            ["stop_agent"] = StopAsync,
            ["resume"] = ResumeAsync,
            ["get_thread_history"] = HistoryAsync,
            ["switch_thread"] = SwitchAsync,
            ["reauth"] = ReauthAsync,
            ["approve_tool"] = (c, f, ct) => ApprovalAsync(c, f, approve: true, ct),
            ["reject_tool"] = (c, f, ct) => ApprovalAsync(c, f, approve: false, ct),
            ["ping"] = (c, _, ct) => c.SendAsync(new Pong(new PongData(_time.GetUtcNow())), ct).AsTask(),
        }.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>The client frame types this protocol handles: the authorization matrix covers each one.</summary>
    internal IReadOnlyCollection<string> FrameTypes => _handlers.Keys;

    public async Task HandleAsync(WebSocketConnection connection, ReadOnlyMemory<byte> utf8, CancellationToken cancellationToken)
    {
        ClientFrame? frame;
        try
        {
            frame = JsonSerializer.Deserialize(utf8.Span, ApexJsonContext.Default.ClientFrame);
        }
        catch (JsonException ex)
        {
            await connection.ErrorAsync("bad_json", $"The frame is not valid JSON: {ex.Message}", cancellationToken);
            return;
        }
        if (frame?.Type is not { Length: > 0 } type)
        {
            await connection.ErrorAsync("invalid_payload", "A frame needs a 'type'.", cancellationToken);
            return;
        }
        if (!_handlers.TryGetValue(type, out var handler))
        {
            await connection.ErrorAsync("unknown_type", $"Unknown frame type '{type}'.", cancellationToken);
            return;
        }
        try
        {
            await handler(connection, frame, cancellationToken);
        }
        catch (InvalidPayloadException ex)
        {
            await connection.ErrorAsync("invalid_payload", ex.Message, cancellationToken);
        }
    }

    private async Task UserMessageAsync(WebSocketConnection connection, ClientFrame frame, CancellationToken cancellationToken)
    {
        var payload = Payload(frame, ApexJsonContext.Default.UserMessagePayload);
        // Checked before anything is created: a message whose thread this socket could not follow is refused whole.
        if (!connection.CanFollow(payload.ThreadId))
        {
            await connection.ErrorAsync("too_many_follows", connection.TooManyFollows, cancellationToken);
            return;
        }
        // Follow before the run is queued, from the thread's current end: run_queued and everything after it arrive here.
        var result = await _coordinator.SubmitAsync(connection.User.Id, payload.ThreadId, payload.Content, payload.Strategy, payload.Agent,
            async (thread, ct) => { if (!connection.IsFollowing(thread.Id)) await connection.FollowAsync(thread.Id, thread.LastSeq, ct); }, cancellationToken);
        if (result is Submission.Refused refused) await connection.ErrorAsync(refused.Code, refused.Message, cancellationToken);
    }

    private async Task StopAsync(WebSocketConnection connection, ClientFrame frame, CancellationToken cancellationToken)
    {
        var payload = Payload(frame, ApexJsonContext.Default.StopAgentPayload);
        if (string.IsNullOrWhiteSpace(payload.RunId)) throw new InvalidPayloadException("'run_id' is required.");
        // The sender always hears back, whether or not it follows the run's thread.
        switch (await _coordinator.CancelAsync(connection.User.Id, payload.RunId, CancelReasons.User, cancellationToken))
        {
            case CancelResult.NotFound:
                await connection.ErrorAsync("not_found", "No such run.", cancellationToken);
                break;
            case CancelResult.AlreadyFinished finished:
                await connection.ErrorAsync("run_finished", $"The run already ended as {finished.Run.Status}.", cancellationToken);
                break;
            case CancelResult.Cancelling c:
                await connection.SendAsync(Accepted(c.Run, "cancelling"), cancellationToken);
                break;
            case CancelResult.Cancelled c:
                await connection.SendAsync(Accepted(c.Run, "cancelled"), cancellationToken);
                break;
            case CancelResult.AlreadyCancelled c:
                await connection.SendAsync(Accepted(c.Run, "cancelled"), cancellationToken);
                break;
        }

        StopAccepted Accepted(RunRecord run, string status) =>
            new(new StopAcceptedData(run.Id, run.ThreadId, status)) { ThreadId = run.ThreadId, RunId = run.Id, UserId = run.UserId };
    }

    /// <summary><c>approve_tool</c> / <c>reject_tool</c>: answered with <c>approval_accepted</c>; the resumed run's events follow on its thread.</summary>
    private async Task ApprovalAsync(WebSocketConnection connection, ClientFrame frame, bool approve, CancellationToken cancellationToken)
    {
        var payload = Payload(frame, ApexJsonContext.Default.ApprovalPayload);
        if (string.IsNullOrWhiteSpace(payload.RunId) || string.IsNullOrWhiteSpace(payload.CallId)) throw new InvalidPayloadException("'run_id' and 'call_id' are required.");
        switch (await _coordinator.DecideAsync(connection.User.Id, payload.RunId, payload.CallId, approve, payload.Arguments, payload.Reason, cancellationToken))
        {
            case ApprovalAnswer.Stored stored:
                await connection.SendAsync(new ApprovalAccepted(new ApprovalAcceptedData(stored.Approval.RunId, stored.Approval.CallId, stored.Approval.Status))
                    { ThreadId = stored.Approval.ThreadId, RunId = stored.Approval.RunId, UserId = connection.User.Id }, cancellationToken);
                break;
            case ApprovalAnswer.Refused refused:
                await connection.ErrorAsync(refused.Code, refused.Message, cancellationToken);
                break;
        }
    }

    private async Task ReauthAsync(WebSocketConnection connection, ClientFrame frame, CancellationToken cancellationToken)
    {
        var payload = Payload(frame, ApexJsonContext.Default.ReauthPayload);
        if (string.IsNullOrWhiteSpace(payload.Token)) throw new InvalidPayloadException("'token' is required.");
        var (user, failure) = await _tokens.ValidateAsync(payload.Token, null, cancellationToken);
        if (user is null || user.Id != connection.User.Id)
        {
            // The socket keeps its current credential until that one ends.
            await connection.ErrorAsync("unauthorized", user is null ? $"The token was refused: {failure}." : "The token belongs to another user.", cancellationToken);
            return;
        }
        connection.Reauthenticate(user);
        await connection.SendAsync(new Reauthenticated(new ReauthenticatedData(user.ExpiresAt)) { UserId = user.Id }, cancellationToken);
    }

    private async Task ResumeAsync(WebSocketConnection connection, ClientFrame frame, CancellationToken cancellationToken)
    {
        var payload = Payload(frame, ApexJsonContext.Default.ResumePayload);
        if (string.IsNullOrWhiteSpace(payload.ThreadId)) throw new InvalidPayloadException("'thread_id' is required.");
        if (payload.AfterSeq < 0) throw new InvalidPayloadException("'after_seq' must not be negative.");
        if (await _threads.GetThreadAsync(connection.User.Id, payload.ThreadId, cancellationToken) is null)
        {
            await connection.ErrorAsync("not_found", "No such thread.", cancellationToken);
            return;
        }
        await connection.FollowAsync(payload.ThreadId, payload.AfterSeq, cancellationToken);
    }

    private async Task HistoryAsync(WebSocketConnection connection, ClientFrame frame, CancellationToken cancellationToken)
    {
        var thread = await ThreadOfAsync(connection, frame, cancellationToken);
        if (thread is null) return;
        var messages = await _threads.RecentMessagesAsync(connection.User.Id, thread.Id, 100, cancellationToken);
        var runs = await _runs.ListRunsAsync(connection.User.Id, thread.Id, 100, null, cancellationToken);
        await connection.SendAsync(new ThreadHistory(new ThreadHistoryData(thread.ToDto(), [.. messages.Select(m => m.ToDto())], [.. runs.Select(r => r.ToDto())]))
            { ThreadId = thread.Id, UserId = connection.User.Id }, cancellationToken);
    }

    private async Task SwitchAsync(WebSocketConnection connection, ClientFrame frame, CancellationToken cancellationToken)
    {
        var thread = await ThreadOfAsync(connection, frame, cancellationToken);
        if (thread is null) return;
        connection.UnfollowAllBut(thread.Id);
        await connection.FollowAsync(thread.Id, thread.LastSeq, cancellationToken);
    }

    private async Task<ThreadRecord?> ThreadOfAsync(WebSocketConnection connection, ClientFrame frame, CancellationToken cancellationToken)
    {
        var payload = Payload(frame, ApexJsonContext.Default.ThreadRefPayload);
        if (string.IsNullOrWhiteSpace(payload.ThreadId)) throw new InvalidPayloadException("'thread_id' is required.");
        var thread = await _threads.GetThreadAsync(connection.User.Id, payload.ThreadId, cancellationToken);
        if (thread is null) await connection.ErrorAsync("not_found", "No such thread.", cancellationToken);
        return thread;
    }

    private static T Payload<T>(ClientFrame frame, JsonTypeInfo<T> type)
    {
        if (frame.Payload is not { ValueKind: JsonValueKind.Object } payload) throw new InvalidPayloadException($"'{frame.Type}' needs a 'payload' object.");
        try
        {
            return payload.Deserialize(type) ?? throw new InvalidPayloadException($"'{frame.Type}' needs a 'payload' object.");
        }
        catch (JsonException ex)
        {
            throw new InvalidPayloadException($"The payload of '{frame.Type}' is invalid: {ex.Message}");
        }
    }

    private sealed class InvalidPayloadException(string message) : Exception(message);
}
