using System.Runtime.ExceptionServices;
using RootfsExport.Compression;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.ExportTree;

/// <summary>
/// The contents of a new export's files written on a thread of their own. The unpack creates each file
/// (the name, in archive order) and copies its data out of the archive into a batch; this thread does the
/// rest: the write into the page cache (the largest single cost of an unpack in perf), mode, times, the
/// inode number and the files.db row. Files go over in batches of up to 1 MiB of data and
/// <see cref="FilesPerBatch"/> files (one wake-up per batch: one per file cost more CPU than it saved on a
/// loaded machine), through <see cref="Buffers"/> fixed buffers, so memory stays flat. A failure surfaces
/// on the unpack's next call, naming the file.
/// </summary>
internal sealed class FileContentWriter : IDisposable
{
    private const int BufferSize = 1 << 20;
    private const int Buffers = 4;
    /// <summary>Each file in a batch holds its fd until written: 4 × 64, well below the usual 1024 with the directory cache's 512.</summary>
    private const int FilesPerBatch = 64;

    /// <summary>What happens once a file's data is written: chmod (when creating could not set the mode), times, its row.</summary>
    public sealed record Finish(ExportPath Path, uint? Chmod, Timespec? Mtime, Action<Statx> Record);

    private readonly record struct Piece(int Fd, int Offset, int Length, Finish File, bool Last, bool Abandon = false);

    private sealed class Batch
    {
        public readonly byte[] Data = new byte[BufferSize];
        public readonly List<Piece> Pieces = new(FilesPerBatch);
        public int Used;
    }

    private readonly HandoffQueue<Batch> _full = new(Buffers);
    private readonly HandoffQueue<Batch> _free = new(Buffers);
    private readonly Thread _thread;
    private readonly object _gate = new();
    private Batch _current;
    private int _pending;
    private volatile bool _stopping;
    private ExceptionDispatchInfo? _error;

    public FileContentWriter()
    {
        for (int i = 1; i < Buffers; i++) _free.Add(new Batch());
        _current = new Batch();
        _thread = new Thread(Run) { IsBackground = true, Name = "file contents" };
        _thread.Start();
    }

    /// <summary>Queues the content of a file just created (fd open for writing); the fd is this writer's from now on.</summary>
    public void Write(int fd, Stream content, Finish finish)
    {
        try
        {
            _error?.Throw();
            while (true)
            {
                if (_current.Used == BufferSize || _current.Pieces.Count == FilesPerBatch) Send();
                int room = BufferSize - _current.Used;
                int n = Fill(content, _current.Data.AsSpan(_current.Used, room));
                bool last = n < room; // the content ended before the buffer did
                _current.Pieces.Add(new Piece(fd, _current.Used, n, finish, last));
                _current.Used += n;
                if (last) return;
            }
        }
        catch
        {
            // the archive failed (or an earlier file did): the fd is closed with the batch, nothing written
            if (_current.Pieces.Count == FilesPerBatch) Send();
            _current.Pieces.Add(new Piece(fd, 0, 0, finish, Last: true, Abandon: true));
            throw;
        }
    }

    private static int Fill(Stream content, Span<byte> into)
    {
        int n = 0;
        while (n < into.Length)
        {
            int r = content.Read(into[n..]);
            if (r == 0) break;
            n += r;
        }
        return n;
    }

    /// <summary>Hands the current batch over and takes a free buffer (waiting while all are in flight).</summary>
    private void Send()
    {
        lock (_gate) _pending++;
        if (!_full.Add(_current) || !_free.TryTake(out var next)) throw new ObjectDisposedException(nameof(FileContentWriter));
        _current = next;
    }

    /// <summary>Returns when every queued file is written, closed and handed to files.db (rethrowing a failure).</summary>
    public void Drain()
    {
        if (_current.Pieces.Count > 0) Send();
        lock (_gate)
            while (_pending > 0) Monitor.Wait(_gate);
        _error?.Throw();
    }

    private void Run()
    {
        while (_full.TryTake(out var batch))
        {
            long started = UnpackPhases.Start();
            foreach (var piece in batch.Pieces)
            {
                try
                {
                    if (_error is null && !_stopping && !piece.Abandon) Apply(piece, batch.Data);
                }
                catch (Exception e)
                {
                    _error ??= ExceptionDispatchInfo.Capture(Named(e, piece.File.Path));
                }
                finally
                {
                    if (piece.Last) Libc.Close(piece.Fd);
                }
            }
            batch.Pieces.Clear();
            batch.Used = 0;
            UnpackPhases.Stop(ref UnpackPhases.Contents, started);
            _free.Add(batch);
            lock (_gate)
                if (--_pending == 0) Monitor.PulseAll(_gate);
        }
    }

    private static unsafe void Apply(in Piece piece, byte[] data)
    {
        fixed (byte* p = data)
        {
            int off = 0;
            while (off < piece.Length)
            {
                nint w = Libc.Write(piece.Fd, p + piece.Offset + off, (nuint)(piece.Length - off));
                if (w < 0) throw PosixException.Last("write");
                off += (int)w;
            }
        }
        if (!piece.Last) return;
        var finish = piece.File;
        if (finish.Chmod is { } mode && Libc.Fchmod(piece.Fd, mode) != 0) throw PosixException.Last("chmod");
        if (finish.Mtime is { } mtime)
        {
            var times = stackalloc Timespec[2];
            times[0] = times[1] = mtime;
            if (Libc.Futimens(piece.Fd, times) != 0) throw PosixException.Last("futimens");
        }
        finish.Record(HostDirectory.StatFd(piece.Fd));
    }

    private static Exception Named(Exception e, ExportPath path) => e is PosixException p
        ? new UserFacingException($"entry '{ArchiveText.Shown(path.Value)}': {p.Operation}: {Libc.Strerror(p.Errno)}", p)
        : e;

    /// <summary>Stops the thread; files not yet written are closed without being written (the unpack failed).</summary>
    public void Dispose()
    {
        _stopping = true;
        if (_current.Pieces.Count > 0) { lock (_gate) _pending++; _full.Add(_current); } // their fds are closed there
        _full.Complete();
        _thread.Join();
    }
}
