using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.NineP.Transport;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>
/// Our 9P server and the forwarder behind the usb9pfs framing, driven by the gadget model with the messages
/// a board sends for a 489-byte file write (a 512-byte Twrite: the case p9_fwd.py dies on).
/// The kernel gadget itself is in KernelGadgetTests.
/// </summary>
public sealed class ServerOverUsbTests : IDisposable
{
    private readonly ScratchDir _scratch = new("rfe-usb");
    private string Export => _scratch["export"];

    public ServerOverUsbTests() => EmptyExport.Create(Export);

    private byte[][] Board(int bytes) =>
    [
        Codec.Encode(0xffff, new Tversion(16384, P9.Version)),
        Codec.Encode(1, new Tattach(0, P9.NoFid, "root", ExportPaths.Canonical(Export), 0)),
        Codec.Encode(2, new Twalk(0, 1, [])),
        Codec.Encode(3, new Tlcreate(1, "written-by-board", 0x42 /* O_RDWR|O_CREAT */, 0x81a4, 42)),
        Codec.Encode(4, new Twrite(1, 0, Enumerable.Range(0, bytes).Select(i => (byte)('a' + i % 26)).ToArray())),
        Codec.Encode(5, new Tclunk(1)),
    ];

    private static async Task Until(Func<bool> done)
    {
        for (int i = 0; i < 500 && !done(); i++) await Task.Delay(20);
        Assert.True(done(), "the board's requests were not all answered");
    }

    private void AssertWritten(GadgetModel gadget, int bytes)
    {
        Assert.Empty(gadget.Violations);
        Assert.Equal(6, gadget.Replies.Count);
        Assert.All(gadget.Replies, r => Assert.NotEqual((byte)MessageType.Rlerror, r[4]));
        Assert.Equal(MessageType.Rwrite, (MessageType)gadget.Replies[4][4]);
        Assert.Equal((uint)bytes, BinaryPrimitives.ReadUInt32LittleEndian(gadget.Replies[4].AsSpan(7)));
        Assert.Equal(bytes, new FileInfo(Path.Combine(Export, "written-by-board")).Length);
    }

    /// <summary>
    /// serve --usb answers in strict ping-pong on one thread (the transport is blocking, one request at a time);
    /// the concurrent loop must cope too, as it does with a transport that offers only the async calls.
    /// </summary>
    private static Task Serve(ExportServer server, UsbgTransport usb, bool serial, CancellationToken ct) =>
        server.Server.ServeAsync(serial ? usb : new AsyncOnly(usb), ct);

    private sealed class AsyncOnly(INinePTransport inner) : INinePTransport
    {
        public ValueTask<int> ReadFrameAsync(Memory<byte> buffer, CancellationToken ct) => inner.ReadFrameAsync(buffer, ct);
        public ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken ct) => inner.WriteFrameAsync(frame, ct);
        public int MaxMessageSize => inner.MaxMessageSize;
        public string Description => inner.Description;
        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Our_server_takes_a_489_byte_write_from_the_board_and_records_its_owner(bool serial)
    {
        var request = Board(489);
        Assert.Equal(512, request[4].Length);
        var gadget = new GadgetModel();
        gadget.Send(request);
        using (var server = ExportServer.Open(Export))
        {
            using var cts = new CancellationTokenSource();
            var serving = Serve(server, new UsbgTransport(gadget), serial, cts.Token);
            await Until(() => gadget.Replies.Count == 6);
            cts.Cancel();
            await serving;
        }
        AssertWritten(gadget, 489);
        using var db = FilesDb.Open(PseudoState.ForExport(Export), create: false);
        var row = db.GetByPath(ExportPaths.Join(ExportPaths.Canonical(Export), "written-by-board"));
        Assert.NotNull(row);
        Assert.Equal((0u, 42u, 0x81a4u), (row!.Uid, row.Gid, row.Mode));
    }

    [Fact]
    public async Task In_ping_pong_every_request_gets_one_reply_in_order_Tflush_and_Tversion_included()
    {
        var gadget = new GadgetModel();
        gadget.Send([
            Codec.Encode(0xffff, new Tversion(16384, P9.Version)),
            Codec.Encode(1, new Tattach(0, P9.NoFid, "root", ExportPaths.Canonical(Export), 0)),
            Codec.Encode(2, new Tflush(1)),                      // its request was answered already: Rflush at once
            Codec.Encode(3, new Twalk(7, 8, [])),                // unknown fid: an errno, not silence
            Codec.Encode(0xffff, new Tversion(16384, P9.Version)), // a reboot: the session starts over, fid 0 goes
            Codec.Encode(4, new Tgetattr(0, AttrMask.Basic)),
        ]);
        using (var server = ExportServer.Open(Export))
        {
            using var cts = new CancellationTokenSource();
            var serving = Serve(server, new UsbgTransport(gadget), serial: true, cts.Token);
            await Until(() => gadget.Replies.Count == 6);
            cts.Cancel();
            await serving;
        }
        Assert.Empty(gadget.Violations);
        Assert.Equal(
            [MessageType.Rversion, MessageType.Rattach, MessageType.Rflush, MessageType.Rlerror, MessageType.Rversion, MessageType.Rlerror],
            gadget.Replies.Select(r => (MessageType)r[4]));
        Assert.Equal([0xffff, 1, 2, 3, 0xffff, 4], gadget.Replies.Select(r => (int)BinaryPrimitives.ReadUInt16LittleEndian(r.AsSpan(5))));
        Assert.Equal(9u /* EBADF */, BinaryPrimitives.ReadUInt32LittleEndian(gadget.Replies[5].AsSpan(7)));
    }

    [Fact]
    public async Task The_forwarder_relays_to_a_TCP_9P_server_one_reply_per_request()
    {
        var gadget = new GadgetModel();
        gadget.Send(Board(489));
        using var server = ExportServer.Open(Export);
        using var listener = ExportServer.Bind(ListenAddress.Parse("tcp:127.0.0.1:0"));
        int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var cts = new CancellationTokenSource();
        var listening = server.Server.ListenAsync(listener, cts.Token);
        var log = new List<string>();
        var forwarding = new NinePForwarder("127.0.0.1", port, l => { lock (log) log.Add(l); }).RunAsync(new UsbgTransport(gadget), cts.Token);
        await Until(() => gadget.Replies.Count == 6);
        cts.Cancel();
        await Task.WhenAll(listening, forwarding.ContinueWith(_ => { }));
        AssertWritten(gadget, 489);
    }

    [Fact]
    public async Task Without_a_server_the_forwarder_still_answers_every_request()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var gadget = new GadgetModel();
        gadget.Send(Board(10)[..2]);
        using var cts = new CancellationTokenSource();
        var log = new List<string>();
        var forwarding = new NinePForwarder("127.0.0.1", port, l => { lock (log) log.Add(l); }).RunAsync(new UsbgTransport(gadget), cts.Token);
        await Until(() => gadget.Replies.Count == 2);
        cts.Cancel();
        await forwarding.ContinueWith(_ => { });
        Assert.Empty(gadget.Violations);
        Assert.All(gadget.Replies, r => Assert.Equal((byte)MessageType.Rlerror, r[4]));
        Assert.Contains(log, l => l.Contains($"127.0.0.1:{port}") && l.Contains("ECONNREFUSED"));
    }

    public void Dispose() => _scratch.Dispose();
}
