using System.Runtime.CompilerServices;
using Apex.Client;
using Apex.Server.Storage;

namespace Apex.Server.Events;

/// <summary>
/// Follows a thread from a cursor: every stored event after it, then live ones, with no gap and
/// no duplicate at the seam. WebSocket and SSE both consume this one stream.
/// </summary>
internal sealed class ThreadFollower(IEventStore store, EventBus bus)
{
    private const int PageSize = 500;

    public async IAsyncEnumerable<ApexEvent> FollowAsync(string userId, string threadId, long afterSeq, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        // Subscribe before reading the store, so nothing committed in between is missed.
        using var subscription = bus.Subscribe(threadId);
        var cursor = afterSeq;
        while (!cancellationToken.IsCancellationRequested)
        {
            IReadOnlyList<ApexEvent> page;
            do
            {
                page = await store.ReadEventsAsync(userId, threadId, cursor, PageSize, cancellationToken);
                foreach (var stored in page)
                {
                    cursor = stored.Seq;
                    yield return stored;
                }
            } while (page.Count == PageSize);

            var gap = false;
            while (!gap && await subscription.Channel.Reader.WaitToReadAsync(cancellationToken))
            {
                while (subscription.Channel.Reader.TryRead(out var live))
                {
                    if (live is null) { gap = true; break; }
                    if (live.Seq <= cursor) continue;
                    if (live.Seq != cursor + 1 || live.UserId != userId) { gap = true; break; }
                    cursor = live.Seq;
                    yield return live;
                }
            }
        }
    }
}
