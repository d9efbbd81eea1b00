using System.Runtime.ExceptionServices;
using RootfsExport.Compression;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

/// <summary>
/// files.db writes of an unpack on a thread of their own, so SQLite's work overlaps the creation of the
/// next objects (tar has no database; this is how we keep up with it on two cores). Writes go over in
/// batches (one wake-up per batch, not per row) through a bounded queue: a slow database holds the
/// unpack back instead of piling up rows, so memory stays flat. Writes run in the order they were
/// posted, inside the caller's transaction; a reader of files.db calls <see cref="Drain"/> first. Any
/// thread may post.
/// </summary>
internal sealed class OwnershipRecorder : IDisposable
{
    private const int BatchSize = 256;
    private const int QueuedBatches = 8;
    private readonly FilesDb _db;
    private readonly HandoffQueue<List<Action<FilesDb>>> _batches = new(QueuedBatches);
    private readonly Thread _thread;
    private readonly object _gate = new();
    private readonly object _posting = new(); // the unpack and the file-contents thread both post
    private List<Action<FilesDb>> _batch = new(BatchSize);
    private int _pending; // batches posted and not yet done (under _gate)
    private ExceptionDispatchInfo? _error;

    public OwnershipRecorder(FilesDb db)
    {
        _db = db;
        _thread = new Thread(Run) { IsBackground = true, Name = "files.db" };
        _thread.Start();
    }

    /// <summary>Queues one write; throws the database's error if an earlier write failed.</summary>
    public void Post(Action<FilesDb> write)
    {
        _error?.Throw();
        lock (_posting)
        {
            _batch.Add(write);
            if (_batch.Count >= BatchSize) Send();
        }
    }

    /// <summary>Returns when every write posted so far is in files.db (rethrowing a failed one's error).</summary>
    public void Drain()
    {
        lock (_posting)
            if (_batch.Count > 0) Send();
        long started = UnpackPhases.Start();
        lock (_gate)
            while (_pending > 0) Monitor.Wait(_gate);
        UnpackPhases.Stop(ref UnpackPhases.RecordWait, started);
        _error?.Throw();
    }

    private void Send()
    {
        _error?.Throw();
        lock (_gate) _pending++;
        long started = UnpackPhases.Start();
        _batches.Add(_batch);
        UnpackPhases.Stop(ref UnpackPhases.RecordWait, started);
        _batch = new List<Action<FilesDb>>(BatchSize);
    }

    private void Run()
    {
        while (_batches.TryTake(out var batch))
        {
            long started = UnpackPhases.Start();
            try
            {
                if (_error is null) foreach (var write in batch) write(_db);
            }
            catch (Exception e)
            {
                _error = ExceptionDispatchInfo.Capture(e); // later batches are dropped: the transaction rolls back
            }
            UnpackPhases.Stop(ref UnpackPhases.Record, started);
            lock (_gate)
                if (--_pending == 0) Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Stops the thread after the writes already handed over (unsent ones are dropped).</summary>
    public void Dispose()
    {
        _batches.Complete();
        _thread.Join();
    }
}
