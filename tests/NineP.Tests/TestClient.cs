using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineP.Tests;

/// <summary>A small pipelining 9P2000.L client for the tests: one reader task matches replies to tags.</summary>
public sealed class TestClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly ConcurrentDictionary<ushort, TaskCompletionSource<Message>> _pending = new();
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly Task _reader;
    private int _nextTag;
    public List<(ushort Tag, MessageType Type)> ReplyOrder { get; } = new();

    private TestClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = Task.Run(ReadLoop);
    }

    public static async Task<TestClient> ConnectAsync(int port)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await s.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        return new TestClient(s);
    }

    private async Task ReadLoop()
    {
        var header = new byte[4];
        try
        {
            while (true)
            {
                await _stream.ReadExactlyAsync(header);
                int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(header);
                var frame = new byte[size];
                header.CopyTo(frame, 0);
                await _stream.ReadExactlyAsync(frame.AsMemory(4));
                var err = Codec.TryDecode(frame, out var tag, out var msg);
                if (err != DecodeError.None) throw new InvalidDataException($"bad reply frame: {err}");
                lock (ReplyOrder) ReplyOrder.Add((tag, msg!.Type));
                if (_pending.TryRemove(tag, out var tcs)) tcs.SetResult(msg);
            }
        }
        catch (Exception e)
        {
            foreach (var p in _pending.Values) p.TrySetException(e);
        }
    }

    public ushort NewTag() => (ushort)(Interlocked.Increment(ref _nextTag) % 60000);

    public async Task<Message> SendAsync(Message m, ushort? tag = null)
    {
        var t = tag ?? (m is Tversion ? P9.NoTag : NewTag());
        var tcs = new TaskCompletionSource<Message>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_pending.TryAdd(t, tcs)) throw new InvalidOperationException($"tag {t} busy");
        var frame = Codec.Encode(t, m);
        await _writeGate.WaitAsync();
        try { await _stream.WriteAsync(frame); }
        finally { _writeGate.Release(); }
        var timeout = Task.Delay(TimeSpan.FromSeconds(30));
        if (await Task.WhenAny(tcs.Task, timeout) == timeout) throw new TimeoutException($"no reply to {m}");
        return await tcs.Task;
    }

    /// <summary>Sends and expects a reply of type T (an Rlerror becomes an exception carrying the errno).</summary>
    public async Task<T> Call<T>(Message m) where T : Message
    {
        var r = await SendAsync(m);
        if (r is Rlerror e) throw new NinePError((int)e.Ecode, m.ToString());
        return r as T ?? throw new InvalidDataException($"expected {typeof(T).Name}, got {r}");
    }

    public async Task<int> Errno(Message m)
    {
        var r = await SendAsync(m);
        return r is Rlerror e ? (int)e.Ecode : 0;
    }

    /// <summary>Version + attach as root by name (what the kernel's access=0 mount sends).</summary>
    public async Task<Qid> Mount(string aname, uint msize = 131096, uint fid = 0)
    {
        var v = await Call<Rversion>(new Tversion(msize, "9P2000.L"));
        if (v.Version != "9P2000.L") throw new InvalidDataException(v.Version);
        Msize = v.Msize;
        return (await Call<Rattach>(new Tattach(fid, P9.NoFid, "root", aname, P9.NoUname))).Qid;
    }

    public uint Msize { get; private set; }

    public async Task<byte[]> ReadAll(uint fid)
    {
        var result = new MemoryStream();
        while (true)
        {
            var r = await Call<Rread>(new Tread(fid, (ulong)result.Length, Msize - 24));
            if (r.Data.Length == 0) return result.ToArray();
            result.Write(r.Data.Span);
        }
    }

    public async Task<List<DirEntry>> ReadDir(uint fid)
    {
        var all = new List<DirEntry>();
        ulong offset = 0;
        while (true)
        {
            var r = await Call<Rreaddir>(new Treaddir(fid, offset, Msize - 24));
            var entries = DirEntryWriter.Parse(r.Data.Span) ?? throw new InvalidDataException("bad readdir payload");
            if (entries.Count == 0) return all;
            all.AddRange(entries);
            offset = entries[^1].Offset;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Shutdown(SocketShutdown.Both);
        await _stream.DisposeAsync();
        try { await _reader; } catch { }
    }
}

public sealed class NinePError(int errno, string what) : Exception($"{what}: errno {errno}")
{
    public int Errno { get; } = errno;
}
