using System.Buffers.Binary;
using RootfsExport.Cli;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Protocol;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>
/// serve --usb --board PATH-OR-SERIAL=BOARD: the host decides which board's layer a usb9pfs gadget attaches (by
/// its USB port or serial), whatever aname the board's own command line sends; unmapped gadgets attach what they ask.
/// </summary>
public sealed class UsbBoardTests : IDisposable
{
    private readonly ScratchDir _scratch = new("rfe-usbb");
    private string Export => _scratch["export"];

    public UsbBoardTests() => EmptyExport.Create(Export);

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public void A_gadget_is_mapped_by_its_port_or_its_serial_and_bad_values_are_named()
    {
        var boards = UsbBoards.Parse(["2-1.1.2=rock3a", "A1B2C3=imx8mp"]);
        Assert.Equal("rock3a", boards.BoardFor("2-1.1.2", "whatever"));
        Assert.Equal("imx8mp", boards.BoardFor("3-4", "A1B2C3"));
        Assert.Null(boards.BoardFor("2-1.1", ""));
        Assert.Null(boards.BoardFor("2-1.1.3", ""));
        Assert.Equal("rock3a", UsbBoards.Every("rock3a").BoardFor("9-9", ""));
        Assert.Equal("/srv/rootfs@rock3a", UsbBoards.AnameFor("/srv/rootfs", "rock3a"));
        Assert.Equal("/srv/rootfs@rock3a", UsbBoards.AnameFor("/srv/rootfs@other", "rock3a"));
        Assert.Contains("expected PATH-OR-SERIAL=BOARD", Assert.Throws<UserFacingException>(() => UsbBoards.Parse(["rock3a"])).Message);
        Assert.Contains("board name 'a b' must match", Assert.Throws<UserFacingException>(() => UsbBoards.Parse(["2-1=a b"])).Message);
        Assert.Contains("given a board twice", Assert.Throws<UserFacingException>(() => UsbBoards.Parse(["2-1=a", "2-1=b"])).Message);
    }

    private byte[][] Board(string aname) =>
    [
        Codec.Encode(0xffff, new Tversion(16384, P9.Version)),
        Codec.Encode(1, new Tattach(0, P9.NoFid, "root", aname, 0)),
        Codec.Encode(2, new Twalk(0, 1, [])),
        Codec.Encode(3, new Tlcreate(1, "made-on-board", 0x42 /* O_RDWR|O_CREAT */, 0x81a4, 0)),
        Codec.Encode(4, new Tclunk(1)),
    ];

    private async Task Serve(GadgetModel gadget, string path, UsbBoards boards)
    {
        using var server = ExportServer.Open(Export);
        using var cts = new CancellationTokenSource();
        var serving = server.Server.ServeAsync(boards.For(new UsbgTransport(gadget), path, "", _ => { }), cts.Token);
        for (int i = 0; i < 500 && gadget.Replies.Count < 5; i++) await Task.Delay(20);
        cts.Cancel();
        await serving;
        Assert.Empty(gadget.Violations);
        Assert.All(gadget.Replies, r => Assert.NotEqual((byte)MessageType.Rlerror, r[4]));
        Assert.Equal(5, gadget.Replies.Count);
    }

    [Fact]
    public async Task The_mapped_gadget_writes_its_boards_layer_and_another_the_export()
    {
        var boards = UsbBoards.Parse(["2-1.1.2=rock3a"]);
        var export = ExportPaths.Canonical(Export);
        var mapped = new GadgetModel();
        mapped.Send(Board(export + "@someone-else")); // the board's command line does not decide
        await Serve(mapped, "2-1.1.2", boards);
        var layer = BoardPaths.For(Export, "rock3a");
        Assert.True(File.Exists(Path.Combine(layer.Upper, "made-on-board")));
        Assert.False(File.Exists(Path.Combine(Export, "made-on-board")));
        Assert.False(Directory.Exists(BoardPaths.For(Export, "someone-else").Upper));

        var other = new GadgetModel();
        other.Send(Board(export));
        await Serve(other, "2-1.1.3", boards);
        Assert.True(File.Exists(Path.Combine(Export, "made-on-board")));
        Assert.Equal(["rock3a"], BoardLab.List(Export));
    }
}
