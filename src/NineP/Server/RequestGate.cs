namespace RootfsExport.NineP.Server;

/// <summary>
/// Lets a host-side change of the export (a feed update) run while no 9P request is being answered: requests
/// enter and leave freely; <see cref="Exclusive{T}"/> stops new ones at the door, waits for those inside, runs
/// the change, and opens again. Requests only wait, never fail, so the board sees a short pause.
/// </summary>
public sealed class RequestGate
{
    /// <summary>
    /// A request can block for ever inside (a Tread on a FIFO nobody writes): after this long the change runs
    /// anyway. Such requests do not touch files.db; everything else is done in microseconds to milliseconds.
    /// </summary>
    public static readonly TimeSpan DrainLimit = TimeSpan.FromSeconds(5);

    private readonly object _gate = new();
    private int _inside;
    private bool _closed;

    public void Enter()
    {
        lock (_gate)
        {
            while (_closed) Monitor.Wait(_gate);
            _inside++;
        }
    }

    public void Leave()
    {
        lock (_gate)
            if (--_inside == 0) Monitor.PulseAll(_gate);
    }

    public T Exclusive<T>(Func<T> change)
    {
        lock (_gate)
        {
            while (_closed) Monitor.Wait(_gate); // one change at a time
            _closed = true;
            var until = DateTime.UtcNow + DrainLimit;
            while (_inside > 0 && DateTime.UtcNow < until) Monitor.Wait(_gate, until - DateTime.UtcNow);
        }
        try { return change(); }
        finally
        {
            ChangeClock.Tick();
            lock (_gate)
            {
                _closed = false;
                Monitor.PulseAll(_gate);
            }
        }
    }
}
