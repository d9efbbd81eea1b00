using System.Buffers.Binary;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Transport;

namespace RootfsExport.Usb9pBridge;

/// <summary>
/// p9_fwd.py's job: relays each T-message from a gadget to a 9P server over TCP (diod, or our own serve --9p)
/// and the server's reply back, one request at a time. One TCP connection per gadget attach, made at its
/// first request. The gadget must get exactly one reply per request: a reply with another tag is dropped,
/// and when the server is unreachable or goes away the request is answered with Rlerror instead of never.
/// </summary>
public sealed class NinePForwarder(string host, int port, Action<string> log)
{
    /// <summary>The errno the board sees when the server cannot be reached.</summary>
    public const uint NoServerErrno = 111; // ECONNREFUSED

    public string Server => $"{host}:{port}";

    public async Task RunAsync(UsbgTransport usb, CancellationToken ct)
    {
        var request = new byte[usb.MaxMessageSize];
        var reply = new byte[usb.MaxMessageSize];
        StreamTransport? server = null;
        try
        {
            while (true)
            {
                int n = await usb.ReadFrameAsync(request, ct);
                if (n == 0) return;
                ushort tag = BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(5));
                int replyLength;
                try
                {
                    server ??= await ConnectAsync(usb.Description, ct);
                    await server.WriteFrameAsync(request.AsMemory(0, n), ct);
                    replyLength = await ReplyFor(server, tag, reply, ct);
                }
                catch (Exception e) when (e is IOException or SocketException or InvalidDataException)
                {
                    log($"forward {usb.Description} → {Server}: {e.Message}; the board's request (tag {tag}) gets ECONNREFUSED");
                    if (server != null) await server.DisposeAsync();
                    server = null;
                    replyLength = Codec.Encode(reply, tag, new Rlerror(NoServerErrno));
                }
                await usb.WriteFrameAsync(reply.AsMemory(0, replyLength), ct);
            }
        }
        finally
        {
            if (server != null) await server.DisposeAsync();
        }
    }

    private async Task<int> ReplyFor(StreamTransport server, ushort tag, byte[] reply, CancellationToken ct)
    {
        while (true)
        {
            int n = await server.ReadFrameAsync(reply, ct);
            if (n == 0) throw new IOException("the 9P server closed the connection");
            ushort got = BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(5));
            if (got == tag) return n;
            // an unknown tag would wedge the gadget until it is re-bound (9p-and-usb9pfs.md §9.2)
            log($"forward: dropped a reply with tag {got} while waiting for tag {tag}");
        }
    }

    private async Task<StreamTransport> ConnectAsync(string gadget, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, ct);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        log($"forward {gadget} → {Server}: connected");
        return new StreamTransport(new NetworkStream(socket, ownsSocket: true), Server);
    }
}
