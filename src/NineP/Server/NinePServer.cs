using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Transport;
using RootfsExport.Posix;

namespace RootfsExport.NineP.Server;

public sealed record ServerOptions
{
    /// <summary>Largest msize we agree to (Linux asks 128 KiB + 24 by default; up to 4 MiB possible).</summary>
    public int MaxMessageSize { get; init; } = 4 * 1024 * 1024 + P9.IoHeaderSize;
    /// <summary>Requests of one connection served at the same time.</summary>
    public int MaxConcurrentRequests { get; init; } = 32;
    /// <summary>One line per request and reply, when set.</summary>
    public Action<string>? Trace { get; init; }
    /// <summary>Failures that are not an errno (bugs): reported here besides being answered with EIO.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// 9P2000.L server for one export. Each connection reads frames in one loop and serves its requests
/// concurrently (bounded), one reply per request, in any order; Tflush is answered after the flushed
/// request's reply. Fids and their host fds go with a clunk, a Tversion reset or the disconnect.
/// </summary>
public sealed class NinePServer<TFid>(INinePFileSystem<TFid> fs, ServerOptions? options = null) where TFid : NinePFid
{
    private readonly ServerOptions _options = options ?? new ServerOptions();
    private long _unexpected;

    public INinePFileSystem<TFid> FileSystem => fs;

    /// <summary>Every request passes it; a host-side change of the export closes it for its duration.</summary>
    public RequestGate Gate { get; } = new();

    /// <summary>Exceptions that were not an errno from the host or the protocol (should stay 0).</summary>
    public long UnexpectedErrors => Interlocked.Read(ref _unexpected);

    /// <summary>
    /// Serves one client until it disconnects or the token fires; never throws for client misbehaviour. A blocking
    /// transport (<see cref="IBlockingNinePTransport"/>, e.g. usb9pfs) is served on a thread of its own.
    /// </summary>
    public Task ServeAsync(INinePTransport transport, CancellationToken cancellationToken) =>
        transport is IBlockingNinePTransport
            ? Task.Factory.StartNew(() => Serve(transport, cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            : new Connection(this, transport).RunAsync(cancellationToken);

    /// <summary>Serves a blocking transport's client on the calling thread, which its loop keeps.</summary>
    private void Serve(INinePTransport transport, CancellationToken cancellationToken) =>
        new Connection(this, transport).RunAsync(cancellationToken).GetAwaiter().GetResult();

    /// <summary>Accepts TCP or unix-socket clients until the token fires.</summary>
    public async Task ListenAsync(Socket listener, CancellationToken cancellationToken)
    {
        var clients = new List<Task>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                Socket s;
                try { s = await listener.AcceptAsync(cancellationToken); }
                catch (OperationCanceledException) { break; }
                if (s.ProtocolType == ProtocolType.Tcp) s.NoDelay = true;
                // one thread per connection with blocking socket calls (see StreamTransport); stopping closes
                // the socket, which ends a blocked read
                var t = new StreamTransport(new NetworkStream(s, ownsSocket: true), s.RemoteEndPoint?.ToString() ?? "unix client");
                lock (clients)
                {
                    clients.RemoveAll(c => c.IsCompleted);
                    clients.Add(Task.Factory.StartNew(() =>
                    {
                        using var unblock = cancellationToken.Register(s.Dispose);
                        try { Serve(t, cancellationToken); }
                        finally { t.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));
                }
            }
        }
        finally
        {
            Task[] pending;
            lock (clients) pending = clients.ToArray();
            await Task.WhenAll(pending);
        }
    }

    internal void Unexpected(Exception e, string what)
    {
        Interlocked.Increment(ref _unexpected);
        _options.Log?.Invoke($"9p: unexpected error in {what}: {e.GetType().Name}: {e.Message} ({e.StackTrace?.TrimStart().Split('\n')[0].Trim()})"); // one line, not a trace
    }

    private sealed class Connection(NinePServer<TFid> server, INinePTransport transport)
    {
        private readonly INinePFileSystem<TFid> _fs = server.FileSystem;
        private readonly ServerOptions _opt = server._options;
        private readonly Dictionary<uint, TFid> _fids = new();
        private readonly Dictionary<ushort, Task> _inFlight = new();
        private readonly SemaphoreSlim _writeGate = new(1, 1);
        private readonly SemaphoreSlim _slots = new(server._options.MaxConcurrentRequests);
        private int _msize = Math.Min(server._options.MaxMessageSize, transport.MaxMessageSize);
        // What the transport offers the loop (diod's Nptrans): blocking calls on the loop's own thread (it must
        // never continue on the thread pool, where its blocking reads would hold a worker each, so its waits
        // block too), one request at a time (all served on the loop, none tracked for Tflush), read-ahead.
        private readonly IBlockingNinePTransport? _blocking = transport as IBlockingNinePTransport;
        private readonly IReadAheadNinePTransport? _readAhead = transport as IReadAheadNinePTransport;
        private readonly bool _serial = transport is IBlockingNinePTransport { OneRequestAtATime: true };
        private bool _versioned;
        private CancellationToken _ct;
        // a reply that could not be written ends the connection
        private Exception? _writeFailure;

        /// <summary>Reads frames and serves them until the client goes, the transport fails or the token fires.</summary>
        public async Task RunAsync(CancellationToken ct)
        {
            _ct = ct;
            try
            {
                while (!ct.IsCancellationRequested && _writeFailure is null)
                {
                    if (_blocking != null) _slots.Wait(ct);
                    else await _slots.WaitAsync(ct);
                    var (buffer, len) = await ReceiveAsync(ct);
                    if (buffer is null) break;
                    await DispatchAsync(buffer, len);
                }
                if (_writeFailure is { } failed) throw failed;
            }
            catch (OperationCanceledException) { }
            catch (Exception e) when (e is IOException or InvalidDataException or SocketException or ObjectDisposedException)
            {
                _opt.Trace?.Invoke($"9p {transport.Description}: connection ends: {e.Message}");
            }
            finally
            {
                await DrainAsync();
                ClunkAll();
            }
        }

        /// <summary>The next frame in a pooled buffer, holding the slot taken for it; (null, 0) at end of stream.</summary>
        private async ValueTask<(byte[]? Buffer, int Length)> ReceiveAsync(CancellationToken ct)
        {
            byte[]? buffer = null;
            try
            {
                int length = NextFrameCapacity(ct);
                if (length > 0)
                {
                    buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 64));
                    int len = _blocking != null ? _blocking.ReadFrame(buffer.AsSpan(0, length), ct)
                        : await transport.ReadFrameAsync(buffer.AsMemory(0, length), ct);
                    if (len > 0) return (buffer, len);
                }
            }
            catch
            {
                if (buffer != null) ArrayPool<byte>.Shared.Return(buffer);
                _slots.Release();
                throw;
            }
            if (buffer != null) ArrayPool<byte>.Shared.Return(buffer);
            _slots.Release();
            return (null, 0);
        }

        /// <summary>The buffer the next frame needs: its own size when the transport reads ahead, else msize; 0 at end of stream.</summary>
        private int NextFrameCapacity(CancellationToken ct)
        {
            int msize = _msize;
            if (_readAhead is null) return msize;
            // a buffer the size of this frame: renting msize (up to 4 MiB) for every small request made the pool
            // allocate and zero large arrays whenever many were in flight
            uint size = _readAhead.PeekFrameSize(ct);
            if (size == 0) return 0;
            if (size > msize) throw new InvalidDataException($"frame size {size} exceeds msize {msize}");
            return (int)Math.Max(size, P9.HeaderSize);
        }

        private async Task DrainAsync()
        {
            Task[] pending;
            lock (_inFlight) pending = _inFlight.Values.ToArray();
            try { await Task.WhenAll(pending); } catch { }
        }

        private void ClunkAll()
        {
            List<TFid> all;
            lock (_fids) { all = _fids.Values.ToList(); _fids.Clear(); }
            foreach (var f in all) Drop(f);
        }

        /// <summary>Starts serving one frame (owns buffer and one slot).</summary>
        private async Task DispatchAsync(byte[] buffer, int len)
        {
            var frame = buffer.AsMemory(0, len);
            var err = Codec.TryDecode(frame, out var tag, out var msg);
            if (msg is Tversion tv)
            {
                // Tversion resets the session: wait for everything in flight, then drop all fids.
                try
                {
                    await DrainAsync();
                    ClunkAll();
                    var reply = Version(tv);
                    await SendAsync(tag, reply, null);
                }
                finally { Finish(buffer); }
                return;
            }
            if (msg is Tflush tf)
            {
                Task? old;
                lock (_inFlight) _inFlight.TryGetValue(tf.OldTag, out old);
                _ = FlushAsync(old, tag, buffer);
                return;
            }
            TaskCompletionSource? done = null;
            if (err == DecodeError.None && !_serial)
                lock (_inFlight)
                    if (!_inFlight.ContainsKey(tag))
                    {
                        done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        _inFlight[tag] = done.Task;
                    }
            // Metadata requests take microseconds: served on the read loop, they skip a thread-pool hop each
            // (the latency a serial client like diodls or the kernel's lookups waits for). Data transfers,
            // directory snapshots and database reads still run beside the loop.
            // A one-request-at-a-time transport has every request served on the loop.
            if (_serial || (err == DecodeError.None && IsQuick(msg!))) await ServeAsync(tag, msg, err, buffer, done, onReadLoop: true);
            else _ = Task.Run(() => ServeAsync(tag, msg, err, buffer, done, onReadLoop: false));
        }

        private static bool IsQuick(Message m) => m is Twalk or Tgetattr or Tclunk or Treadlink or Tlopen or Tstatfs or Tsetattr
            or Tlcreate or Tmkdir or Tsymlink or Tmknod or Tunlinkat or Tremove or Trename or Trenameat or Tlink or Tlock or Tgetlock
            or Tauth or Tattach;

        private async Task FlushAsync(Task? old, ushort tag, byte[] buffer)
        {
            try
            {
                if (old != null) try { await old; } catch { }
                await SendAsync(tag, new Rflush(), null);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException) { }
            finally { Finish(buffer); }
        }

        private void Finish(byte[] buffer)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _slots.Release();
        }

        private async Task ServeAsync(ushort tag, Message? msg, DecodeError err, byte[] buffer, TaskCompletionSource? done, bool onReadLoop)
        {
            try
            {
                if (err == DecodeError.BadFrame) return; // no trustworthy tag: nothing to answer
                var reply = Answer(tag, msg, err, out var raw);
                // replies to requests served on the read loop are queued while more requests are read ahead
                await SendAsync(tag, reply, raw, queue: onReadLoop && _blocking != null && _readAhead is { HasBufferedFrame: true });
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { _writeFailure ??= e; }
            catch (OperationCanceledException) { }
            catch (Exception e) { server.Unexpected(e, "reply"); }
            finally
            {
                // Only after the reply is out may a Tflush for this tag be answered.
                if (done != null)
                {
                    lock (_inFlight) if (_inFlight.TryGetValue(tag, out var t) && t == done.Task) _inFlight.Remove(tag);
                    done.SetResult();
                }
                Finish(buffer);
            }
        }

        /// <summary>The reply to one decoded request (not Tversion/Tflush): errors become Rlerror with their errno.</summary>
        private Message Answer(ushort tag, Message? msg, DecodeError err, out byte[]? raw)
        {
            raw = null;
            if (err != DecodeError.None) return new Rlerror((uint)(err == DecodeError.UnknownType ? Errno.EOPNOTSUPP : Errno.EINVAL));
            if (!_versioned) return new Rlerror(Errno.EPROTO);
            _opt.Trace?.Invoke($"9p <- {tag} {msg}");
            server.Gate.Enter();
            try { return Handle(msg!, tag, out raw); }
            catch (PosixException e) { return new Rlerror((uint)e.Errno); }
            catch (NinePException e) { return new Rlerror((uint)e.Errno); }
            catch (Exception e)
            {
                server.Unexpected(e, msg!.Type.ToString());
                return new Rlerror(Errno.EIO);
            }
            finally { server.Gate.Leave(); }
        }

        /// <summary>Writes a reply: a message, or a pre-encoded pooled frame (raw, returned to the pool here).</summary>
        private async Task SendAsync(ushort tag, Message reply, byte[]? raw, bool queue = false)
        {
            byte[] frame;
            int len;
            if (raw != null) { frame = raw; len = (int)BinaryPrimitives.ReadUInt32LittleEndian(raw); }
            else
            {
                len = Codec.Measure(reply);
                frame = ArrayPool<byte>.Shared.Rent(len);
                Codec.Encode(frame, tag, reply);
            }
            try
            {
                if (_opt.Trace != null) _opt.Trace($"9p -> {tag} {(raw != null ? $"{(MessageType)raw[4]} {len} bytes" : reply.ToString())}");
                if (_blocking != null) _writeGate.Wait(_ct);
                else await _writeGate.WaitAsync(_ct);
                try
                {
                    if (queue) _readAhead!.QueueFrame(frame.AsSpan(0, len));
                    else if (_blocking != null) _blocking.WriteFrame(frame.AsSpan(0, len));
                    else await transport.WriteFrameAsync(frame.AsMemory(0, len), _ct);
                }
                finally { _writeGate.Release(); }
            }
            finally { ArrayPool<byte>.Shared.Return(frame); }
        }

        private Rversion Version(Tversion tv)
        {
            uint msize = (uint)Math.Min(Math.Min(tv.Msize, (uint)_opt.MaxMessageSize), (uint)transport.MaxMessageSize);
            if (!tv.Version.StartsWith(P9.Version, StringComparison.Ordinal) || msize < 256)
            {
                _versioned = false;
                return new Rversion(msize, "unknown");
            }
            _msize = (int)msize;
            _versioned = true;
            return new Rversion(msize, P9.Version);
        }

        // ---------------- fid table ----------------

        private TFid Acquire(uint id)
        {
            lock (_fids)
                if (_fids.TryGetValue(id, out var f) && f.TryAddRef()) return f;
            throw new NinePException(Errno.EBADF, $"unknown fid {id}");
        }

        private void AddFid(uint id, TFid fid)
        {
            lock (_fids)
            {
                if (!_fids.ContainsKey(id)) { _fids[id] = fid; return; }
            }
            Drop(fid);
            throw new NinePException(Errno.EBADF, $"fid {id} in use");
        }

        /// <summary>Replaces (or adds) a fid: walk with newfid == fid.</summary>
        private void ReplaceFid(uint id, TFid fid)
        {
            TFid? old;
            lock (_fids) { _fids.TryGetValue(id, out old); _fids[id] = fid; }
            if (old != null) Drop(old);
        }

        /// <summary>Takes a fid out of the table; the caller releases its reference.</summary>
        private TFid RemoveFid(uint id)
        {
            TFid? f;
            lock (_fids) if (!_fids.Remove(id, out f)) throw new NinePException(Errno.EBADF, "unknown fid");
            _fs.Clunk(f);
            return f;
        }

        /// <summary>A fid leaves the table for good: the file system forgets it, its state goes with its last reference.</summary>
        private void Drop(TFid fid)
        {
            _fs.Clunk(fid);
            fid.Release();
        }

        // ---------------- handlers ----------------

        private Message Handle(Message m, ushort tag, out byte[]? raw)
        {
            raw = null;
            switch (m)
            {
                case Tauth:
                    // "No authentication required": ENOENT is what diod's libnpclient (diodls, diodcat) takes as such.
                    throw new NinePException(Errno.ENOENT, "no authentication required");
                case Tattach a: return Attach(a);
                case Twalk w: return Walk(w);
                case Tclunk c: return Clunk(c);
                case Tremove r: return Remove(r);
                case Tgetattr g: { using var f = Lease(g.Fid); return new Rgetattr(_fs.GetAttr(f.Fid, g.RequestMask)); }
                case Tsetattr s: { using var f = Lease(s.Fid); _fs.SetAttr(f.Fid, s.Valid, Values(s)); return new Rsetattr(); }
                case Tstatfs s: { using var f = Lease(s.Fid); return StatFs(_fs.StatFs(f.Fid)); }
                case Tlopen o: { using var f = Lease(o.Fid); return Open(f.Fid, o); }
                case Tlcreate c: { using var f = Lease(c.Fid); return Create(f.Fid, c); }
                case Tmkdir d: { using var f = Lease(d.Dfid); return new Rmkdir(_fs.Mkdir(f.Fid, NinePNames.Check(d.Name), d.Mode, d.Gid)); }
                case Tsymlink s: { using var f = Lease(s.Dfid); return new Rsymlink(_fs.Symlink(f.Fid, NinePNames.Check(s.Name), s.Target, s.Gid)); }
                case Tmknod n: { using var f = Lease(n.Dfid); return new Rmknod(_fs.Mknod(f.Fid, NinePNames.Check(n.Name), n.Mode, n.Major, n.Minor, n.Gid)); }
                case Treadlink r: { using var f = Lease(r.Fid); return new Rreadlink(_fs.ReadLink(f.Fid)); }
                case Tfsync s: { using var f = Lease(s.Fid); _fs.Fsync(f.Fid, s.Datasync != 0); return new Rfsync(); }
                case Tlock l: { using var f = Lease(l.Fid); return new Rlock(_fs.Lock(f.Fid, new LockRange(l.LockType, l.Start, l.Length, l.ProcId, l.ClientId), l.Flags)); }
                case Tgetlock g: { using var f = Lease(g.Fid); return GetLock(_fs.GetLock(f.Fid, new LockRange(g.LockType, g.Start, g.Length, g.ProcId, g.ClientId))); }
                case Tlink l: { using var d = Lease(l.Dfid); using var f = Lease(l.Fid); _fs.Link(d.Fid, f.Fid, NinePNames.Check(l.Name)); return new Rlink(); }
                case Trename r: { using var f = Lease(r.Fid); using var d = Lease(r.Dfid); _fs.Rename(f.Fid, d.Fid, NinePNames.Check(r.Name)); return new Rrename(); }
                case Trenameat r: return RenameAt(r);
                case Tunlinkat u: { using var d = Lease(u.DirFid); _fs.UnlinkAt(d.Fid, NinePNames.Check(u.Name), u.Flags); return new Runlinkat(); }
                case Txattrwalk x: { using var f = Lease(x.Fid); return XattrWalk(f.Fid, x); }
                case Txattrcreate x: { using var f = Lease(x.Fid); return XattrCreate(f.Fid, x); }
                case Tread r: { using var f = Lease(r.Fid); return Read(f.Fid, r, tag, out raw); }
                case Treaddir r: { using var f = Lease(r.Fid); return ReadDir(f.Fid, r, tag, out raw); }
                case Twrite w: { using var f = Lease(w.Fid); return new Rwrite(Write(f.Fid, w)); }
                default:
                    // R-messages, Tlerror and anything else a client has no business sending.
                    throw new NinePException(Errno.EOPNOTSUPP, $"unexpected {m.Type}");
            }
        }

        private Rattach Attach(Tattach a)
        {
            if (a.Afid != P9.NoFid) throw new NinePException(Errno.EINVAL, "no authentication: afid must be NOFID");
            var fid = _fs.Attach(a.Aname, AttachUid(a), out var qid);
            AddFid(a.Fid, fid);
            return new Rattach(qid);
        }

        /// <summary>
        /// Twalk: a bad name after the first ends the walk there (a partial walk: the qids so far, no new fid);
        /// a bad first name is an error.
        /// </summary>
        private Rwalk Walk(Twalk w)
        {
            var fid = Acquire(w.Fid);
            try
            {
                if (w.NewFid != w.Fid) lock (_fids) if (_fids.ContainsKey(w.NewFid)) throw new NinePException(Errno.EBADF, "newfid in use");
                int walkable = NinePNames.WalkablePrefix(w.Names);
                if (walkable == 0 && w.Names.Count > 0) NinePNames.Check(w.Names[0]);
                var names = walkable == w.Names.Count ? w.Names : w.Names.Take(walkable).ToArray();
                var qids = _fs.Walk(fid, names, out var walked);
                if (walked != null && walkable < w.Names.Count) { Drop(walked); walked = null; }
                if (walked != null)
                {
                    if (w.NewFid == w.Fid) ReplaceFid(w.NewFid, walked); else AddFid(w.NewFid, walked);
                }
                return new Rwalk(qids);
            }
            finally { fid.Release(); }
        }

        private Rclunk Clunk(Tclunk c)
        {
            var fid = RemoveFid(c.Fid);
            try
            {
                if (fid.XattrWrite is { } x)
                {
                    fid.XattrWrite = null;
                    if ((ulong)x.Data.Length != x.Size) throw new NinePException(Errno.EINVAL, "xattr size mismatch");
                    _fs.XattrSet(fid, x.Name, x.Data.ToArray(), x.Flags);
                }
            }
            finally { fid.Release(); }
            return new Rclunk();
        }

        private Rremove Remove(Tremove r)
        {
            var fid = RemoveFid(r.Fid);
            try { _fs.Remove(fid); }
            finally { fid.Release(); }
            return new Rremove();
        }

        private Rrenameat RenameAt(Trenameat r)
        {
            using var from = Lease(r.OldDirFid);
            using var to = Lease(r.NewDirFid);
            _fs.RenameAt(from.Fid, NinePNames.Check(r.OldName), to.Fid, NinePNames.Check(r.NewName));
            return new Rrenameat();
        }

        private static SetAttrValues Values(Tsetattr s) => new(s.Mode, s.Uid, s.Gid, s.Size, s.AtimeSec, s.AtimeNsec, s.MtimeSec, s.MtimeNsec);

        private static Rstatfs StatFs(in FsStats s) =>
            new(s.Type, s.BlockSize, s.Blocks, s.BlocksFree, s.BlocksAvailable, s.Files, s.FilesFree, s.Fsid, s.NameLength);

        private static Rgetlock GetLock(in LockRange l) => new(l.Type, l.Start, l.Length, l.ProcId, l.ClientId);

        // ---------------- open state ----------------

        private Rlopen Open(TFid fid, Tlopen o)
        {
            lock (fid.Gate)
            {
                if (fid.IsOpen) throw new NinePException(Errno.EBADF, "fid already open");
                var qid = _fs.Open(fid, o.Flags);
                bool dir = qid.Type == QidType.Dir;
                fid.OpenState = dir ? FidOpenState.Directory : FidOpenState.File;
                fid.OpenForWriting = !dir && (o.Flags & 3) != 0;
                return new Rlopen(qid, dir ? DirectoryIounit : 0);
            }
        }

        private Rlcreate Create(TFid fid, Tlcreate c)
        {
            NinePNames.Check(c.Name);
            lock (fid.Gate)
            {
                if (fid.IsOpen) throw new NinePException(Errno.EBADF, "fid already open");
                var qid = _fs.Create(fid, c.Name, c.Flags, c.Mode, c.Gid);
                fid.OpenState = FidOpenState.File;
                fid.OpenForWriting = (c.Flags & 3) != 0;
                return new Rlcreate(qid, 0);
            }
        }

        private Rxattrwalk XattrWalk(TFid fid, Txattrwalk x)
        {
            var value = _fs.XattrWalk(fid, x.Name, out var nf);
            nf.XattrValue = value;
            if (x.NewFid == x.Fid) ReplaceFid(x.NewFid, nf); else AddFid(x.NewFid, nf);
            return new Rxattrwalk((ulong)value.Length);
        }

        /// <summary>Linux's XATTR_SIZE_MAX: no larger value is accepted.</summary>
        private const int XattrSizeMax = 65536;

        private Rxattrcreate XattrCreate(TFid fid, Txattrcreate x)
        {
            if (x.Name.Length == 0 || x.Name.Contains('\0')) throw new NinePException(Errno.EINVAL, "bad xattr name");
            if (x.AttrSize > XattrSizeMax) throw new NinePException(Errno.E2BIG, "xattr too large");
            if ((x.Flags & ~3u) != 0 || x.Flags == 3) throw new NinePException(Errno.EINVAL, "bad xattr flags");
            lock (fid.Gate)
            {
                if (fid.IsOpen) throw new NinePException(Errno.EBADF, "fid already open");
                _fs.XattrCreate(fid, x.Name, x.AttrSize, x.Flags);
                fid.XattrWrite = new PendingXattr(x.Name, x.AttrSize, x.Flags);
            }
            return new Rxattrcreate();
        }

        // ---------------- data ----------------

        /// <summary>Tread: the pending xattr value, or file data straight into a pooled reply frame (raw).</summary>
        private Message Read(TFid fid, Tread r, ushort tag, out byte[]? raw)
        {
            int count = (int)Math.Min(r.Count, (uint)(_msize - P9.ReadReplyHeaderSize));
            raw = ArrayPool<byte>.Shared.Rent(P9.ReadReplyHeaderSize + count);
            try
            {
                var dest = raw.AsSpan(P9.ReadReplyHeaderSize, count);
                int n;
                if (fid.XattrValue is { } value) n = CopyFrom(value, r.Offset, dest);
                else if (fid.OpenState == FidOpenState.Directory) throw new NinePException(Errno.EISDIR, "read a directory");
                else if (fid.OpenState != FidOpenState.File) throw new NinePException(Errno.EBADF, "fid not open");
                else n = _fs.Read(fid, r.Offset, dest);
                WriteCountHeader(raw, MessageType.Rread, tag, n);
            }
            catch { ArrayPool<byte>.Shared.Return(raw); raw = null; throw; }
            return null!;
        }

        private static int CopyFrom(byte[] value, ulong offset, Span<byte> dest)
        {
            if (offset >= (ulong)value.Length) return 0;
            int n = Math.Min(dest.Length, value.Length - (int)offset);
            value.AsSpan((int)offset, n).CopyTo(dest);
            return n;
        }

        private uint Write(TFid fid, Twrite w)
        {
            if (fid.XattrWrite is { } x)
                lock (fid.Gate)
                {
                    if (w.Offset != (ulong)x.Data.Length || (ulong)x.Data.Length + (ulong)w.Data.Length > x.Size)
                        throw new NinePException(Errno.EINVAL, "xattr write out of order or beyond its size");
                    x.Data.Write(w.Data.Span);
                    return (uint)w.Data.Length;
                }
            if (fid.OpenState != FidOpenState.File || !fid.OpenForWriting) throw new NinePException(Errno.EBADF, "fid not open for writing");
            return _fs.Write(fid, w.Offset, w.Data.Span);
        }

        /// <summary>Treaddir: whole entries from the cookie on, from the snapshot taken at offset 0.</summary>
        private Message ReadDir(TFid fid, Treaddir r, ushort tag, out byte[]? raw)
        {
            raw = null;
            if (fid.OpenState != FidOpenState.Directory) throw new NinePException(Errno.EBADF, "fid is not an open directory");
            List<DirEntry> snapshot;
            lock (fid.Gate)
            {
                if (r.Offset == 0 || fid.Snapshot is null) fid.Snapshot = _fs.ReadDir(fid);
                snapshot = fid.Snapshot;
            }
            int count = (int)Math.Min(r.Count, (uint)(_msize - P9.ReadReplyHeaderSize));
            raw = ArrayPool<byte>.Shared.Rent(P9.ReadReplyHeaderSize + count);
            var w = new DirEntryWriter(raw.AsSpan(P9.ReadReplyHeaderSize, count));
            for (ulong i = r.Offset; i < (ulong)snapshot.Count; i++)
                if (!w.TryAdd(snapshot[(int)i])) break;
            if (w.Length == 0 && r.Offset < (ulong)snapshot.Count)
            {
                ArrayPool<byte>.Shared.Return(raw);
                raw = null;
                throw new NinePException(Errno.EINVAL, "readdir count too small for one entry");
            }
            WriteCountHeader(raw, MessageType.Rreaddir, tag, w.Length);
            return null!;
        }

        /// <summary>
        /// Rlopen's iounit for a directory: Linux sizes each Treaddir (and the receive buffer it allocates for
        /// the reply) by it, else by msize. At msize 1 MiB that buffer cost the TCG guest of the benchmark
        /// 2.5-4 ms per Treaddir against ~1 ms at 64 KiB (one directory of 5,000 entries is three 64 KiB replies).
        /// </summary>
        private uint DirectoryIounit => (uint)Math.Min(64 * 1024, _msize - P9.IoHeaderSize);

        private static void WriteCountHeader(byte[] raw, MessageType type, ushort tag, int count)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(raw, (uint)(P9.ReadReplyHeaderSize + count));
            raw[4] = (byte)type;
            BinaryPrimitives.WriteUInt16LittleEndian(raw.AsSpan(5), tag);
            BinaryPrimitives.WriteUInt32LittleEndian(raw.AsSpan(7), (uint)count);
        }

        /// <summary>A reference on a fid of the table for the duration of one request.</summary>
        private readonly struct FidLease(TFid fid) : IDisposable
        {
            public TFid Fid => fid;
            public void Dispose() => fid.Release();
        }

        private FidLease Lease(uint id) => new(Acquire(id));

        /// <summary>n_uname when given (access=user, diod's tools); else the name: root, a number, or nobody.</summary>
        private static uint AttachUid(Tattach a)
        {
            if (a.NUname != P9.NoUname) return a.NUname;
            if (a.Uname is "" or "root") return 0;
            return uint.TryParse(a.Uname, out var n) ? n : 65534;
        }
    }
}
