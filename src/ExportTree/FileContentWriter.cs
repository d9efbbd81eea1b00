using System.Buffers;
using System.Runtime.ExceptionServices;
using RootfsExport.Compression;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.ExportTree;

/// <summary>
/// The contents of a new export's files written on a thread of their own. The unpack creates each file
/// (the name, in archive order) and copies its data out of the archive; this thread does the rest: the
/// write into the page cache (the largest single cost of an unpack in perf), mode, times, the inode number
/// and the files.db row. tar does all of that on one core; this puts the second one to work. Memory stays
/// flat: at most <see cref="QueuedBytes"/> of data and <see cref="QueuedFiles"/> open files are queued.
/// A failure surfaces on the unpack's next call, naming the file.
/// </summary>
internal sealed class FileContentWriter : IDisposable
{
    private const int ChunkSize = 1 << 20;
    private const long QueuedBytes = 8 << 20;
    /// <summary>Each queued file holds its fd; with the directory cache's 512 well below the usual 1024.</summary>
    private const int QueuedFiles = 128;

    /// <summary>What happens once a file's data is written: chmod (when creating could not set the mode), times, its row.</summary>
    public sealed record Finish(ExportPath Path, uint? Chmod, Timespec? Mtime, Action<Statx> Record);

    private sealed record Job(int Fd, byte[]? Data, int Length, int Budget, Finish File, bool Last, bool Abandon = false);

    private readonly HandoffQueue<Job> _jobs = new(QueuedFiles);
    private readonly Thread _thread;
    private readonly object _gate = new();
    private long _bytesQueued;
    private int _pending;
    private volatile bool _stopping;
    private ExceptionDispatchInfo? _error;

    public FileContentWriter()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "file contents" };
        _thread.Start();
    }

    /// <summary>Queues the content of a file just created (fd open for writing); the fd is this writer's from now on.</summary>
    public void Write(int fd, Stream content, Finish finish)
    {
        try
        {
            ThrowIfFailed();
            long remaining = KnownRemaining(content);
            while (true)
            {
                int want = remaining >= 0 ? (int)Math.Min(remaining, ChunkSize) : ChunkSize;
                if (want == 0) { Enqueue(new Job(fd, null, 0, 0, finish, Last: true)); return; }
                var (chunk, length) = ReadChunk(content, want);
                if (remaining >= 0) remaining -= length;
                bool last = length < want || remaining == 0;
                Enqueue(new Job(fd, chunk, length, want, finish, last));
                if (last) return;
            }
        }
        catch
        {
            Enqueue(new Job(fd, null, 0, 0, finish, Last: true, Abandon: true)); // the archive failed: close the fd, nothing more
            throw;
        }
    }

    /// <summary>The bytes left in the content when it knows (an archive member does), else -1.</summary>
    private static long KnownRemaining(Stream content)
    {
        try { return content.Length - content.Position; }
        catch (NotSupportedException) { return -1; }
    }

    /// <summary>Up to <paramref name="want"/> bytes of the content, in a pooled buffer taken against the byte budget.</summary>
    private (byte[] Chunk, int Length) ReadChunk(Stream content, int want)
    {
        lock (_gate)
        {
            while (_bytesQueued > 0 && _bytesQueued + want > QueuedBytes) Monitor.Wait(_gate);
            _bytesQueued += want;
        }
        var chunk = ArrayPool<byte>.Shared.Rent(want);
        int length = 0;
        try
        {
            while (length < want)
            {
                int n = content.Read(chunk, length, want - length);
                if (n == 0) break;
                length += n;
            }
        }
        catch
        {
            Release(chunk, want);
            throw;
        }
        return (chunk, length);
    }

    private void Enqueue(Job job)
    {
        lock (_gate) _pending++;
        if (!_jobs.Add(job)) throw new ObjectDisposedException(nameof(FileContentWriter));
    }

    private void Release(byte[] chunk, int budget)
    {
        ArrayPool<byte>.Shared.Return(chunk);
        lock (_gate)
        {
            _bytesQueued -= budget;
            Monitor.PulseAll(_gate);
        }
    }

    /// <summary>Returns when every queued file is written, closed and handed to files.db (rethrowing a failure).</summary>
    public void Drain()
    {
        lock (_gate)
            while (_pending > 0) Monitor.Wait(_gate);
        ThrowIfFailed();
    }

    private void ThrowIfFailed() => _error?.Throw();

    private void Run()
    {
        while (_jobs.TryTake(out var job))
        {
            long started = UnpackPhases.Start();
            try
            {
                if (_error is null && !_stopping && !job.Abandon) Apply(job);
            }
            catch (Exception e)
            {
                _error ??= ExceptionDispatchInfo.Capture(Named(e, job.File.Path));
            }
            finally
            {
                if (job.Last) Libc.Close(job.Fd);
                if (job.Data != null) Release(job.Data, job.Budget);
                UnpackPhases.Stop(ref UnpackPhases.Contents, started);
                lock (_gate)
                    if (--_pending == 0) Monitor.PulseAll(_gate);
            }
        }
    }

    private static unsafe void Apply(Job job)
    {
        fixed (byte* p = job.Data)
        {
            int off = 0;
            while (off < job.Length)
            {
                nint w = Libc.Write(job.Fd, p + off, (nuint)(job.Length - off));
                if (w < 0) throw PosixException.Last("write");
                off += (int)w;
            }
        }
        if (!job.Last) return;
        var finish = job.File;
        if (finish.Chmod is { } mode && Libc.Fchmod(job.Fd, mode) != 0) throw PosixException.Last("chmod");
        if (finish.Mtime is { } mtime)
        {
            var times = stackalloc Timespec[2];
            times[0] = times[1] = mtime;
            if (Libc.Futimens(job.Fd, times) != 0) throw PosixException.Last("futimens");
        }
        finish.Record(HostDirectory.StatFd(job.Fd));
    }

    private static Exception Named(Exception e, ExportPath path) => e is PosixException p
        ? new UserFacingException($"entry '{ArchiveText.Shown(path.Value)}': {p.Operation}: {Libc.Strerror(p.Errno)}", p)
        : e;

    /// <summary>Stops the thread; files still queued are closed without being written (the unpack failed).</summary>
    public void Dispose()
    {
        _stopping = true;
        _jobs.Complete();
        _thread.Join();
    }
}
