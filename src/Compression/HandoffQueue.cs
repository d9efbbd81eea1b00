namespace RootfsExport.Compression;

/// <summary>
/// A bounded first-in first-out hand-over between two threads that sleeps instead of spinning.
/// BlockingCollection waits through SemaphoreSlim, which spins with sched_yield before it sleeps: with
/// the decoder, the unpack and the files.db thread on two cores, that spinning took CPU the other threads
/// needed (5,820 sched_yield calls in one unpack of the bookworm rootfs). A waiter is woken only when
/// there is one.
/// </summary>
public sealed class HandoffQueue<T>
{
    private readonly Queue<T> _items;
    private readonly int _capacity;
    private readonly object _gate = new();
    private int _waitingTakers, _waitingAdders;
    private bool _completed;

    public HandoffQueue(int capacity)
    {
        _capacity = capacity;
        _items = new Queue<T>(capacity);
    }

    /// <summary>Adds an item, waiting while the queue is full. False when the queue was completed meanwhile.</summary>
    public bool Add(T item)
    {
        lock (_gate)
        {
            while (_items.Count >= _capacity && !_completed)
            {
                _waitingAdders++;
                try { Monitor.Wait(_gate); }
                finally { _waitingAdders--; }
            }
            if (_completed) return false;
            _items.Enqueue(item);
            if (_waitingTakers > 0) Monitor.PulseAll(_gate);
            return true;
        }
    }

    /// <summary>Takes the oldest item, waiting while the queue is empty; false once it is empty and completed.</summary>
    public bool TryTake(out T item)
    {
        lock (_gate)
        {
            while (_items.Count == 0 && !_completed)
            {
                _waitingTakers++;
                try { Monitor.Wait(_gate); }
                finally { _waitingTakers--; }
            }
            if (_items.Count == 0)
            {
                item = default!;
                return false;
            }
            item = _items.Dequeue();
            if (_waitingAdders > 0) Monitor.PulseAll(_gate);
            return true;
        }
    }

    /// <summary>No more items will come: takers drain what is left, then get false; adders get false.</summary>
    public void Complete()
    {
        lock (_gate)
        {
            _completed = true;
            Monitor.PulseAll(_gate);
        }
    }
}
