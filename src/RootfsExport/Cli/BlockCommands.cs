using System.CommandLine;
using System.Net;
using RootfsExport.BlockExport;
using RootfsExport.BootSpec;

namespace RootfsExport.Cli;

/// <summary>`image` (an ext4 image of the export, optionally with dm-verity) and `tftp` (Raspberry Pi netboot layout); serve --nbd is in <see cref="NbdServe"/>.</summary>
public static class BlockCommands
{
    public static IEnumerable<Command> Create() => [Image(), Tftp()];

    private static Command Image()
    {
        var export = new Argument<string>("export") { Description = "the export directory" };
        var output = new Option<string>("-o", "--output") { Description = "the image file to write (outside the export)", Required = true };
        var size = new Option<string>("--size") { Description = "auto (the content with room to spare), or a size like 2G", DefaultValueFactory = _ => "auto" };
        var verity = new Option<bool>("--verity") { Description = "append a dm-verity hash tree (veritysetup) and record its root hash" };
        var pseudo = new Option<FileInfo?>("--pseudo") { Description = "pseudo binary (default: OE native sysroots, then PATH)" };
        var cmd = new Command("image", "write an ext4 image of the export with the owners, modes, devices and xattrs of files.db, as an ordinary user (mke2fs -d under pseudo); reproducible with SOURCE_DATE_EPOCH");
        cmd.Arguments.Add(export);
        foreach (var o in new Option[] { output, size, verity, pseudo }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var result = Ext4Image.Build(new ImageRequest(p.GetValue(export)!, p.GetValue(output)!, p.GetValue(size)!, p.GetValue(verity),
                ImageUpdates.EpochFromEnvironment(), p.GetValue(pseudo)?.FullName));
            var r = result.Record;
            Console.WriteLine($"wrote {result.Image}: ext4, {r.FilesystemBytes >> 20} MiB (sparse), {result.Entries} entries in {result.Elapsed.TotalSeconds:F1} s, UUID {r.Uuid}, times clamped to {r.Epoch}");
            if (r.Verity is { } v)
            {
                Console.WriteLine($"verity: root hash {v.RootHash}, hash tree at byte {v.HashOffset} (salt {v.Salt})");
                Console.WriteLine($"check:  veritysetup verify --hash-offset={v.HashOffset} {result.Image} {result.Image} {v.RootHash}");
            }
            Console.WriteLine($"record: {ImageRecord.PathFor(result.Image)} ('rootfs-export update' rebuilds the image when the export changes)");
            return 0;
        });
        return cmd;
    }

    private static Command Tftp()
    {
        var export = new Argument<string>("export") { Description = "the export whose boot firmware directory the Pi fetches" };
        var serial = new Option<string>("--serial") { Description = "the Pi's serial number as it asks for it over TFTP (8 hex digits, e.g. 1234abcd)", Required = true };
        var root = new Option<string>("--tftp-root") { Description = "the TFTP server's root directory", Required = true };
        var transport = new Option<string>("--transport") { Description = "root file system: nbd (the export's image, board = the serial) or nfs", DefaultValueFactory = _ => "nbd" };
        var server = new Option<string>("--server") { Description = "IPv4 address of this host as the Pi reaches it", Required = true };
        var port = new Option<int?>("--port") { Description = $"nbd: the base port of serve --nbd (default {TransportDefaults.NbdPort}); nfs: the NFS port (default {TransportDefaults.NfsPort})" };
        var cmd = new Command("tftp", "Raspberry Pi netboot: TFTP-ROOT/SERIAL serves the export's boot firmware with a cmdline.txt of its own (nbd or nfs root); prints the dnsmasq lines");
        cmd.Arguments.Add(export);
        foreach (var o in new Option[] { serial, root, transport, server, port }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var request = new PiNetbootRequest(p.GetValue(export)!, p.GetValue(serial)!, p.GetValue(root)!, p.GetValue(transport)!,
                Check.ParseServer(p.GetValue(server)!), p.GetValue(port));
            var result = PiNetboot.Link(request);
            Console.WriteLine($"{result.Directory} -> {result.Firmware} ({result.Linked} entries)");
            Console.WriteLine($"cmdline.txt: {result.Cmdline}");
            Console.WriteLine("dnsmasq (proxy DHCP beside the network's own DHCP server, and TFTP):");
            foreach (var line in PiNetboot.DnsmasqLines(request)) Console.WriteLine($"  {line}");
            return 0;
        });
        return cmd;
    }
}

/// <summary>serve --nbd: Debian's nbdkit on the export's image, a copy-on-write overlay per board.</summary>
public sealed class NbdServe(Option<string> bind)
{
    public Option<bool> Nbd { get; } = new("--nbd") { Description = "serve the export's ext4 image (rootfs-export image) over NBD with nbdkit, each board with a copy-on-write overlay of its own" };
    public Option<int> Port { get; } = new("--port") { Description = $"--nbd: the first board's port; board i gets PORT+i (default {TransportDefaults.NbdPort})", DefaultValueFactory = _ => TransportDefaults.NbdPort };
    public Option<string[]> Boards { get; } = new("--board") { Description = "repeatable. --nbd: BOARD, a board name (= its NBD export name; default: the boards named before, else 'default'). --usb: PATH-OR-SERIAL=BOARD, the gadget at that USB port (e.g. 2-1.1.2, see `usb list`) or with that serial attaches the board's own layer, whatever aname it sends" };
    public Option<bool> ReadOnly { get; } = new("--read-only") { Description = "--nbd: one read-only export for every board, no overlays" };
    public Option<string?> Reset { get; } = new("--reset") { Description = "--nbd: drop BOARD's overlay (on the running serve; it starts again empty)" };
    public Option<string?> Image { get; } = new("--image") { Description = "--nbd: the image to serve (default: the one built from the export)" };

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { Nbd, Port, Boards, ReadOnly, Reset, Image }) cmd.Options.Add(o);
    }

    public async Task<int> RunAsync(ParseResult parse, string exportDir, CancellationToken cancel)
    {
        if (parse.GetValue(Reset) is { } board)
        {
            if (NbdServer.Reset(exportDir, board)) { Console.WriteLine($"board {board}: overlay dropped; the running serve starts it again empty"); return 0; }
            Console.WriteLine($"board {board}: no running serve --nbd has it; its overlay starts empty when it is next served");
            return 0;
        }
        if (!IPAddress.TryParse(parse.GetValue(bind), out var address)) throw new UserFacingException($"--bind: '{parse.GetValue(bind)}' is not an IP address");
        var plan = NbdServer.Plan(exportDir, parse.GetValue(Image), address, parse.GetValue(Port), parse.GetValue(ReadOnly), parse.GetValue(Boards) ?? [], Console.Out);
        var verity = VerityRoot.FromImageRecord(plan.Image);
        var host = address.Equals(IPAddress.Any) ? IPAddress.Parse("192.168.7.1") : address;
        Console.WriteLine($"serving {plan.Image} over NBD (nbdkit{(plan.ReadOnly ? ", read-only" : ", copy-on-write overlay per board; the image is not written")})");
        if (address.Equals(IPAddress.Any)) Console.WriteLine("(listening on all addresses: 192.168.7.1 below stands for the address the board reaches)");
        foreach (var (name, port) in plan.Boards)
            Console.WriteLine($"board {name}: cmdline: {KernelCmdline.For(new NbdEndpoint(host, name, port, verity), new CmdlineOptions())}");
        Console.WriteLine($"test:    nbdinfo nbd://{host}:{plan.Boards[0].Port}/{plan.Boards[0].Board}");
        Console.Out.Flush();
        using var stop = new StopSignal(cancel);
        try { await NbdServer.RunAsync(plan, Console.Out, stop.Token); }
        catch (OperationCanceledException) when (stop.Token.IsCancellationRequested) { }
        Console.WriteLine("stopped: every nbdkit ended; the image is unchanged");
        return 0;
    }
}
