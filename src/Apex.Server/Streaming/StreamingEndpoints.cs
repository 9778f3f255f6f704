using System.Globalization;
using System.Net.ServerSentEvents;
using Apex.Client;
using Apex.Server.Auth;
using Apex.Server.Events;
using Apex.Server.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Apex.Server.Streaming;

internal static class StreamingEndpoints
{
    public static IEndpointRouteBuilder MapStreamingEndpoints(this IEndpointRouteBuilder app)
    {
        // A socket holds its request for hours, with whatever the pipeline keeps for that request: its endpoint takes only
        // singletons (no request scope is made for it) and is short-circuited past authentication, authorization and rate
        // limiting (their per-request state, the bearer principal's claims among it, would live as long as the socket).
        // It authenticates itself: a ticket, a bearer header or a bearer subprotocol.
        var sockets = ActivatorUtilities.CreateInstance<WebSocketEndpoint>(app.ServiceProvider);
        app.Map("/ws", (RequestDelegate)sockets.HandleAsync).WithTags("Streaming").ExcludeFromDescription().ShortCircuit();
        app.MapGet("/api/threads/{threadId}/events", StreamEvents).RequireAuthorization().WithTags("Streaming");
        return app;
    }

    /// <summary>
    /// The thread's events as SSE, from <c>Last-Event-ID</c> (or <c>?after=</c>, or the start), then live.
    /// The event id is the seq, so a reconnecting EventSource resumes exactly where it stopped.
    /// </summary>
    private static async Task<Results<ServerSentEventsResult<ApexEvent>, NotFound, ValidationProblem, ProblemHttpResult>> StreamEvents(string threadId, long? after,
        HttpContext context, CurrentUser user, IThreadStore store, ThreadFollower follower, SessionWatch sessions, ConnectionRegistry registry, TimeProvider time,
        IHostApplicationLifetime lifetime, CancellationToken cancellationToken)
    {
        var request = context.Request;
        var cursor = after ?? 0;
        if (request.Headers["Last-Event-ID"].ToString() is { Length: > 0 } lastEventId && !long.TryParse(lastEventId, NumberStyles.None, CultureInfo.InvariantCulture, out cursor))
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["Last-Event-ID"] = ["Last-Event-ID must be a seq (a non-negative integer)."] });
        if (cursor < 0) return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["after"] = ["after must not be negative."] });
        if (await store.GetThreadAsync(user.Id, threadId, cancellationToken) is null) return TypedResults.NotFound();
        if (await registry.TryRegisterAsync(StreamKind.Sse, user.Id, cancellationToken) is not { } place)
            return TypedResults.Problem(statusCode: StatusCodes.Status429TooManyRequests, title: "too_many_streams",
                detail: $"At most {registry.Limit(StreamKind.Sse)} open event streams per user; close one first.");
        // Watched from before the response starts, and released when it ends, however it ends.
        // Shutdown ends the stream, as it closes sockets: otherwise a draining node would hold the client on a stream that no
        // longer gets the thread's events, instead of letting it resume (Last-Event-ID) on the node that takes over.
        var lease = new SseLease(place, cancellationToken, lifetime.ApplicationStopping);
        context.Response.RegisterForDispose(lease);
        lease.Watch(sessions, user);
        return TypedResults.ServerSentEvents(Items(context.Response, user, threadId, cursor, follower, lease, time));
    }

    /// <summary>
    /// The thread's events until the client leaves or its credential ends: a revoked session or an expired token ends
    /// the stream with an <c>error</c> event (<c>session_revoked</c> / <c>token_expired</c>, no id, so a reconnect with
    /// a fresh token resumes from the last seq seen).
    /// </summary>
    private static async IAsyncEnumerable<SseItem<ApexEvent>> Items(HttpResponse response, CurrentUser user, string threadId, long cursor, ThreadFollower follower, SseLease lease,
        TimeProvider time)
    {
        // The headers go out now, not with the first event: a client knows at once that its stream is open (and watched).
        await response.Body.FlushAsync(lease.Token);
        var events = follower.FollowAsync(user.Id, threadId, cursor, lease.Token).GetAsyncEnumerator(lease.Token);
        await using (events)
        {
            while (true)
            {
                bool more;
                try
                {
                    more = await events.MoveNextAsync();
                }
                catch (OperationCanceledException) when (lease.EndReason is not null || lease.Stopping)
                {
                    more = false;
                }
                if (!more) break;
                yield return new SseItem<ApexEvent>(events.Current, events.Current.Type) { EventId = events.Current.Seq.ToString(CultureInfo.InvariantCulture) };
            }
        }
        if (lease.EndReason is { } reason)
        {
            var code = reason == SessionWatch.RevokedReason ? "session_revoked" : "token_expired";
            yield return new SseItem<ApexEvent>(new ErrorFrame(new ErrorData(code, reason)) { ThreadId = threadId, UserId = user.Id, Timestamp = time.GetUtcNow() }, EventTypes.Error);
        }
    }

    /// <summary>One open SSE stream: its place within the user's limit, and the end of its credential.</summary>
    private sealed class SseLease(IDisposable place, CancellationToken requestAborted, CancellationToken stopping) : IDisposable
    {
        private readonly CancellationTokenSource _ended = CancellationTokenSource.CreateLinkedTokenSource(requestAborted, stopping);

        public bool Stopping => stopping.IsCancellationRequested && !requestAborted.IsCancellationRequested;
        private IDisposable? _watch;
        private string? _endReason;
        private int _released;

        public CancellationToken Token => _ended.Token;

        public string? EndReason => Volatile.Read(ref _endReason);

        public void Watch(SessionWatch sessions, CurrentUser user) => _watch = sessions.Watch(user, reason =>
        {
            if (Interlocked.CompareExchange(ref _endReason, reason, null) is not null) return;
            try { _ended.Cancel(); } catch (ObjectDisposedException) { }
        });

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) != 0) return;
            _watch?.Dispose();
            place.Dispose();
            _ended.Dispose();
        }
    }

}
