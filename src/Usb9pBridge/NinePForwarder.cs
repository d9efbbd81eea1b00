using System.Buffers.Binary;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Transport;

namespace RootfsExport.Usb9pBridge;

/// <summary>
/// p9_fwd.py's job: relays each T-message from a gadget to a 9P server over TCP (diod, or our own serve --9p)
/// and the server's reply back, one request at a time, with blocking calls on one thread (the gadget has one
/// request in flight, so there is nothing to overlap). One TCP connection per gadget attach, made at its first
/// request. The gadget must get exactly one reply per request: a reply with another tag is dropped, and when
/// the server is unreachable, goes away or stops answering, the request is answered with Rlerror instead of never.
/// </summary>
public sealed class NinePForwarder(string host, int port, Action<string> log)
{
    /// <summary>The errno the board sees when the server cannot be reached.</summary>
    public const uint NoServerErrno = 111; // ECONNREFUSED

    /// <summary>A server that has not answered in this time is treated as gone (the board's syscall must not hang forever).</summary>
    public static readonly TimeSpan ReplyTimeout = TimeSpan.FromSeconds(60);

    public string Server => $"{host}:{port}";

    /// <summary>The supervisor's session: runs <see cref="Run"/> on a thread of its own.</summary>
    public Task RunAsync(UsbgTransport usb, CancellationToken ct) =>
        Task.Factory.StartNew(() => Run(usb, ct), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    /// <summary>Relays until the gadget goes (a UsbException) or the token fires.</summary>
    public void Run(UsbgTransport usb, CancellationToken ct)
    {
        var request = new byte[usb.MaxMessageSize];
        var reply = new byte[usb.MaxMessageSize];
        StreamTransport? server = null;
        try
        {
            while (true)
            {
                int n;
                try { n = usb.ReadFrame(request, ct); }
                catch (OperationCanceledException) { return; }
                if (n == 0) return;
                ushort tag = BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(5));
                int replyLength;
                try
                {
                    server ??= Connect(usb.Description, ct);
                    // a blocking transport: these complete synchronously, on this thread
                    server.WriteFrameAsync(request.AsMemory(0, n), ct).AsTask().GetAwaiter().GetResult();
                    replyLength = ReplyFor(server, tag, reply, ct);
                }
                catch (Exception e) when (e is IOException or SocketException or InvalidDataException)
                {
                    log($"forward {usb.Description} → {Server}: {e.Message}; the board's request (tag {tag}) gets ECONNREFUSED");
                    server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
                    server = null;
                    replyLength = Codec.Encode(reply, tag, new Rlerror(NoServerErrno));
                }
                usb.WriteFrame(reply.AsSpan(0, replyLength));
            }
        }
        finally
        {
            server?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
    }

    private int ReplyFor(StreamTransport server, ushort tag, byte[] reply, CancellationToken ct)
    {
        while (true)
        {
            int n = server.ReadFrameAsync(reply, ct).AsTask().GetAwaiter().GetResult();
            if (n == 0) throw new IOException("the 9P server closed the connection");
            ushort got = BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(5));
            if (got == tag) return n;
            // an unknown tag would wedge the gadget until it is re-bound (docs/USB9PFS.md, protocol rules)
            log($"forward: dropped a reply with tag {got} while waiting for tag {tag}");
        }
    }

    private StreamTransport Connect(string gadget, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true, ReceiveTimeout = (int)ReplyTimeout.TotalMilliseconds };
        try
        {
            // a blocking connect: after any async call .NET keeps the socket non-blocking and runs every later
            // Send/Receive through its epoll thread, a thread hand-off per call. Cancelling closes the socket.
            using (ct.Register(socket.Dispose)) socket.Connect(host, port);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            socket.Dispose();
            ct.ThrowIfCancellationRequested();
            throw;
        }
        log($"forward {gadget} → {Server}: connected");
        return new StreamTransport(new NetworkStream(socket, ownsSocket: true), Server);
    }
}
