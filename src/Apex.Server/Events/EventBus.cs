using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Threading.Channels;
using Apex.Client;
using Apex.Server.Storage;

namespace Apex.Server.Events;

/// <summary>
/// In-process fan-out of stored events to the followers of a thread. It is only a wake-up with
/// the payload attached: followers check <c>seq</c> continuity and read the store on any gap, so
/// a slow follower that loses its oldest buffered events loses nothing.
/// </summary>
internal sealed class EventBus
{
    private readonly ConcurrentDictionary<string, ImmutableArray<Subscription>> _byThread = new();

    public EventBus(StoreSignals signals)
    {
        signals.EventsStored += Wake;
        signals.Resync += WakeAll;
    }

    public Subscription Subscribe(string threadId)
    {
        var subscription = new Subscription(this, threadId);
        _byThread.AddOrUpdate(threadId, static (_, s) => [s], static (_, list, s) => list.Add(s), subscription);
        return subscription;
    }

    public void Publish(ApexEvent evt)
    {
        if (evt.ThreadId is null || !_byThread.TryGetValue(evt.ThreadId, out var subscribers)) return;
        foreach (var subscriber in subscribers) subscriber.Channel.Writer.TryWrite(evt);
    }

    /// <summary>Events of the thread were stored elsewhere (another node): its followers read them from the store.</summary>
    public void Wake(string threadId)
    {
        if (!_byThread.TryGetValue(threadId, out var subscribers)) return;
        foreach (var subscriber in subscribers) subscriber.Channel.Writer.TryWrite(null);
    }

    /// <summary>Wakes every follower, e.g. after missing notifications while reconnecting.</summary>
    public void WakeAll()
    {
        foreach (var thread in _byThread.Keys) Wake(thread);
    }

    private void Remove(Subscription subscription)
    {
        while (_byThread.TryGetValue(subscription.ThreadId, out var list))
        {
            var updated = list.Remove(subscription);
            if (updated.IsEmpty
                ? _byThread.TryRemove(new KeyValuePair<string, ImmutableArray<Subscription>>(subscription.ThreadId, list))
                : _byThread.TryUpdate(subscription.ThreadId, updated, list))
                return;
        }
    }

    internal sealed class Subscription(EventBus bus, string threadId) : IDisposable
    {
        public string ThreadId { get; } = threadId;

        /// <summary>Live events; null means "new events are in the store".</summary>
        public Channel<ApexEvent?> Channel { get; } = System.Threading.Channels.Channel.CreateBounded<ApexEvent?>(
            new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

        public void Dispose() => bus.Remove(this);
    }
}
