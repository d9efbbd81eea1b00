using System.CommandLine;
using RootfsExport.BootSpec;

namespace RootfsExport.Cli;

/// <summary>bootspec (write Boot Loader Spec entries into an export) and cmdline (print the kernel command line).</summary>
public static class BootCommands
{
    public static IEnumerable<Command> Create() => [Bootspec(), Cmdline()];

    private sealed class Common
    {
        public readonly Argument<string> Export = new("export") { Description = "The export directory" };
        public readonly Option<string> Transport = new("--transport")
        {
            Description = "How the board reaches its root: nfs, tcp (9P over TCP), usbg (9P over the usb9pfs gadget), virtio (9P in QEMU) or nbd (the export's ext4 image)",
            Required = true,
        };
        public readonly Option<string?> Server = new("--server") { Description = "IPv4 address the board connects to (nfs, tcp)" };
        public readonly Option<int?> Port = new("--port") { Description = $"Server port (nfs: NFS and MOUNT, default {TransportDefaults.NfsPort}; tcp: default {TransportDefaults.NinePTcpPort}; nbd: default {TransportDefaults.NbdPort})" };
        public readonly Option<string?> Tag = new("--tag") { Description = $"virtio mount tag, as QEMU's mount_tag= (default {TransportDefaults.VirtioTag})" };
        public readonly Option<string?> Udc = new("--udc") { Description = "usbg: the board's UDC name, e.g. ci_hdrc.0" };
        public readonly Option<string?> Console = new("--console") { Description = "console= value, e.g. ttyAMA0,115200 (default: the serial getty the export starts; 'none' for no console=)" };
        public readonly Option<string?> Ip = new("--ip") { Description = "ip= value (default dhcp for nfs and tcp)" };
        public readonly Option<int?> Msize = new("--msize") { Description = $"9P msize (tcp, virtio: default {TransportDefaults.NinePMsize}; usbg: at most the gadget buflen)" };
        public readonly Option<int?> Buflen = new("--buflen") { Description = $"usbg: gadget buflen the initramfs sets (default {TransportDefaults.UsbgBuflen})" };
        public readonly Option<string?> Cache = new("--cache") { Description = "9P cache= mode (default mmap: the board sees what update changes; loose caches lookups and never sees them)" };
        public readonly Option<string?> Access = new("--access") { Description = "9P access= mode (default user)" };
        public readonly Option<string?> Append = new("--append") { Description = "Further kernel arguments, appended at the end" };
        public readonly Option<string?> NbdName = new("--name") { Description = "nbd: the export name the board asks for (its board name with serve --nbd; default 'default')" };
        public readonly Option<string?> Image = new("--image") { Description = "nbd: the image served; with a dm-verity tree (image --verity) its root hash goes on the line" };
        public readonly Option<string?> Board = new("--board")
        {
            Description = "tcp, usbg: the board's name: it attaches aname=<export>@<board>, its own copy-on-write layer over the export (see rootfs-export board)",
        };

        public void AddTo(Command c)
        {
            c.Arguments.Add(Export);
            foreach (var o in new Option[] { Transport, Server, Port, Tag, Udc, Console, Ip, Msize, Buflen, Cache, Access, Append, NbdName, Image, Board })
                c.Options.Add(o);
        }

        public BootSpecRequest Request(ParseResult p) => new()
        {
            Transport = p.GetValue(Transport)!,
            Server = p.GetValue(Server),
            Port = p.GetValue(Port),
            Tag = p.GetValue(Tag),
            Udc = p.GetValue(Udc),
            Console = p.GetValue(Console),
            Ip = p.GetValue(Ip),
            Msize = p.GetValue(Msize),
            Buflen = p.GetValue(Buflen),
            Cache = p.GetValue(Cache),
            Access = p.GetValue(Access),
            Append = p.GetValue(Append),
            NbdName = p.GetValue(NbdName),
            Image = p.GetValue(Image) is { } image ? Path.GetFullPath(image) : null,
            Board = p.GetValue(Board) is { } board ? ExportServing.BoardPaths.CheckName(board) : null,
        };
    }

    private static Command Bootspec()
    {
        var common = new Common();
        var dtb = new Option<string?>("--dtb") { Description = "Devicetree: a name in the export's /boot or a path inside the export (default: the only *.dtb in /boot)" };
        var initrd = new Option<string?>("--initrd") { Description = "Initramfs path inside the export (default: found in /boot)" };
        var machineId = new Option<string?>("--machine-id") { Description = "machine-id key (32 lowercase hex digits); barebox filters entries by it" };
        var machine = new Option<string?>("--machine") { Description = "Machine name for the title and file name (default: the export's /etc/hostname)" };
        var appendRoot = new Option<bool>("--appendroot") { Description = "Write barebox's 'linux-appendroot true' instead of an explicit root=" };
        var cmd = new Command("bootspec", "Write Boot Loader Spec entries (one per kernel) into <export>/loader/entries");
        common.AddTo(cmd);
        foreach (var o in new Option[] { dtb, initrd, machineId, machine, appendRoot }) cmd.Options.Add(o);
        cmd.SetAction(p =>
        {
            var request = common.Request(p) with
            {
                Dtb = p.GetValue(dtb),
                Initrd = p.GetValue(initrd),
                MachineId = p.GetValue(machineId),
                Machine = p.GetValue(machine),
                AppendRoot = p.GetValue(appendRoot),
            };
            var result = BootEntries.Write(p.GetValue(common.Export)!, request);
            ExportTree.ExportAdoption.Sync(p.GetValue(common.Export)!, "loader"); // entries are root-owned in files.db too
            foreach (var w in result.Plan.Warnings) System.Console.Error.WriteLine($"rootfs-export: warning: {w}");
            var dir = Path.Combine(BootEntries.ExportPath(p.GetValue(common.Export)!), BootEntries.EntriesDirectory);
            foreach (var f in result.Written) System.Console.WriteLine($"wrote {Path.Combine(dir, f)}");
            foreach (var f in result.Unchanged) System.Console.WriteLine($"unchanged {Path.Combine(dir, f)}");
            foreach (var f in result.Removed) System.Console.WriteLine($"removed {Path.Combine(dir, f)}");
            System.Console.WriteLine($"cmdline: {result.Plan.Cmdline}");
            if (BareboxLine.For(result.Plan.Endpoint) is { } bb) System.Console.WriteLine($"barebox: {bb}");
            if (result.Plan.Endpoint is UsbgEndpoint u) System.Console.Error.Write(UsbGadgetSetup.Script(u));
            return 0;
        });
        return cmd;
    }

    private static Command Cmdline()
    {
        var common = new Common();
        var barebox = new Option<bool>("--barebox") { Description = "Also print barebox's boot command (nfs)" };
        var cmd = new Command("cmdline", "Print the kernel command line for booting the export, ready to paste (usbg: the gadget set-up goes to stderr)");
        common.AddTo(cmd);
        cmd.Options.Add(barebox);
        cmd.SetAction(p =>
        {
            var (endpoint, line) = BootEntries.Cmdline(p.GetValue(common.Export)!, common.Request(p));
            System.Console.WriteLine(line);
            if (p.GetValue(barebox))
            {
                var bb = BareboxLine.For(endpoint)
                         ?? throw new UserFacingException($"--barebox: barebox boots an export by URI only over NFS (--transport nfs), not {endpoint.Transport}");
                System.Console.WriteLine(bb);
            }
            if (endpoint is UsbgEndpoint u) System.Console.Error.Write(UsbGadgetSetup.Script(u));
            return 0;
        });
        return cmd;
    }
}
