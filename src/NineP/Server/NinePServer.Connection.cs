using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Transport;
using RootfsExport.Posix;

namespace RootfsExport.NineP.Server;

public sealed partial class NinePServer<TFid>
{
    /// <summary>One client's transport loop: reads frames, hands them to the handlers, writes replies, tracks tags for Tflush.</summary>
    private sealed class Connection(NinePServer<TFid> server, INinePTransport transport)
    {
        private readonly ServerOptions _opt = server._options;
        private readonly RequestHandlers<TFid> _handlers = NewHandlers(server, transport);
        private readonly Dictionary<ushort, Task> _inFlight = new();
        private readonly SemaphoreSlim _writeGate = new(1, 1);
        private readonly SemaphoreSlim _slots = new(server._options.MaxConcurrentRequests);
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

        private static RequestHandlers<TFid> NewHandlers(NinePServer<TFid> server, INinePTransport transport) =>
            new(server.FileSystem, new FidTable<TFid>(server.FileSystem)) {
                Msize = Math.Min(server._options.MaxMessageSize, transport.MaxMessageSize),
                AnameFor = transport is IAttachNaming naming ? naming.Aname : null,
            };

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
                _handlers.Fids.ClunkAll();
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
            int msize = _handlers.Msize;
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
                    _handlers.Fids.ClunkAll();
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
            // Metadata requests take microseconds: served on the read loop, they skip a thread-pool hop each
            // (the latency a serial client like diodls or the kernel's lookups waits for). Data transfers,
            // directory snapshots and database reads still run beside the loop.
            // A one-request-at-a-time transport has every request served on the loop.
            bool onLoop = _serial || (err == DecodeError.None && RequestHandlers<TFid>.IsQuick(msg!));
            if (onLoop && _blocking != null)
            {
                ServeOnLoop(tag, msg, err, buffer);
                return;
            }
            // Only a request served beside the loop can be flushed: one on the loop is answered before the
            // next frame (a Tflush naming it) is read.
            TaskCompletionSource? done = null;
            if (err == DecodeError.None && !onLoop)
                lock (_inFlight)
                    if (!_inFlight.ContainsKey(tag))
                    {
                        done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                        _inFlight[tag] = done.Task;
                    }
            if (onLoop) await ServeAsync(tag, msg, err, buffer, done);
            else _ = Task.Run(() => ServeAsync(tag, msg, err, buffer, done));
        }

        /// <summary>
        /// Serves one request of a blocking transport on its read loop, request to reply, with no task or state
        /// machine on the way: the whole cost a serial client waits for, besides the system calls. The reply is
        /// queued while more requests are read ahead (a pipelining client gets them in one write).
        /// </summary>
        private void ServeOnLoop(ushort tag, Message? msg, DecodeError err, byte[] buffer)
        {
            try
            {
                if (err == DecodeError.BadFrame) return; // no trustworthy tag: nothing to answer
                var reply = Answer(tag, msg, err, out var raw);
                Send(tag, reply, raw, queue: _readAhead is { HasBufferedFrame: true });
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { _writeFailure ??= e; }
            catch (OperationCanceledException) { }
            catch (Exception e) { server.Unexpected(e, "reply"); }
            finally { Finish(buffer); }
        }

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

        private async Task ServeAsync(ushort tag, Message? msg, DecodeError err, byte[] buffer, TaskCompletionSource? done)
        {
            try
            {
                if (err == DecodeError.BadFrame) return; // no trustworthy tag: nothing to answer
                var reply = Answer(tag, msg, err, out var raw);
                await SendAsync(tag, reply, raw);
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
            try { return _handlers.Handle(msg!, tag, out raw); }
            catch (PosixException e) { return new Rlerror((uint)e.Errno); }
            catch (NinePException e) { return new Rlerror((uint)e.Errno); }
            catch (Exception e)
            {
                server.Unexpected(e, msg!.Type.ToString());
                return new Rlerror(Errno.EIO);
            }
            finally
            {
                if (!RequestHandlers<TFid>.LeavesExportAlone(msg!)) ChangeClock.Tick();
                server.Gate.Leave();
            }
        }

        /// <summary>Writes a reply: a message, or a pre-encoded pooled frame (raw, returned to the pool here).</summary>
        private async Task SendAsync(ushort tag, Message reply, byte[]? raw)
        {
            if (_blocking != null)
            {
                Send(tag, reply, raw, queue: false);
                return;
            }
            var frame = Frame(tag, reply, raw, out int len);
            try
            {
                await _writeGate.WaitAsync(_ct);
                try { await transport.WriteFrameAsync(frame.AsMemory(0, len), _ct); }
                finally { _writeGate.Release(); }
            }
            finally { ArrayPool<byte>.Shared.Return(frame); }
        }

        /// <summary><see cref="SendAsync"/> for a blocking transport; queue: see <see cref="IReadAheadNinePTransport.QueueFrame"/>.</summary>
        private void Send(ushort tag, Message reply, byte[]? raw, bool queue)
        {
            var frame = Frame(tag, reply, raw, out int len);
            try
            {
                _writeGate.Wait(_ct);
                try
                {
                    if (queue) _readAhead!.QueueFrame(frame.AsSpan(0, len));
                    else _blocking!.WriteFrame(frame.AsSpan(0, len));
                }
                finally { _writeGate.Release(); }
            }
            finally { ArrayPool<byte>.Shared.Return(frame); }
        }

        /// <summary>The reply's frame in a pooled array (the caller returns it): raw as it is, or the message encoded.</summary>
        private byte[] Frame(ushort tag, Message reply, byte[]? raw, out int len)
        {
            byte[] frame;
            if (raw != null) { frame = raw; len = (int)BinaryPrimitives.ReadUInt32LittleEndian(raw); }
            else
            {
                len = Codec.Measure(reply);
                frame = ArrayPool<byte>.Shared.Rent(len);
                Codec.Encode(frame, tag, reply);
            }
            if (_opt.Trace != null) _opt.Trace($"9p -> {tag} {(raw != null ? $"{(MessageType)raw[4]} {len} bytes" : reply.ToString())}");
            return frame;
        }

        private Rversion Version(Tversion tv)
        {
            uint msize = (uint)Math.Min(Math.Min(tv.Msize, (uint)_opt.MaxMessageSize), (uint)transport.MaxMessageSize);
            if (!tv.Version.StartsWith(P9.Version, StringComparison.Ordinal) || msize < 256)
            {
                _versioned = false;
                return new Rversion(msize, "unknown");
            }
            _handlers.Msize = (int)msize;
            _versioned = true;
            return new Rversion(msize, P9.Version);
        }

    }
}
