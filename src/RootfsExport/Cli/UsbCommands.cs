using System.CommandLine;
using RootfsExport.BootSpec;
using RootfsExport.Usb9pBridge;

namespace RootfsExport.Cli;

/// <summary>`usb list` and `usb forward`: the usb9pfs host side without our server (p9_fwd.py's two jobs).</summary>
public static class UsbCommands
{
    /// <summary>p9_fwd.py's default server port (the 9P well-known port).</summary>
    public const int ForwardDefaultPort = 564;

    public static IEnumerable<Command> Create()
    {
        var usb = new Command("usb", "usb9pfs gadgets (boards running the Linux usbg 9P transport) seen from this host");
        usb.Subcommands.Add(List());
        usb.Subcommands.Add(Forward());
        yield return usb;
    }

    private static Command List()
    {
        var gadgets = new GadgetOptions();
        var cmd = new Command("list", "list usb9pfs gadgets: devices with an interface of class FF/FF/09, any vendor/product id");
        gadgets.AddTo(cmd);
        cmd.SetAction(parseResult =>
        {
            var filter = gadgets.Filter(parseResult);
            IReadOnlyList<Usb9pfsGadget> found;
            using (var host = UsbHost.Create()) found = host.FindGadgets(filter);
            if (found.Count == 0)
            {
                Console.Error.WriteLine($"no usb9pfs gadget found ({filter}); on the board: is the usb9pfs function linked into a configuration and its UDC bound, is the cable in?");
                return 0;
            }
            var rows = found.Select(g => new[] { g.Bus.ToString("000"), g.Address.ToString("000"), Or(g.Manufacturer), Or(g.Product), g.Id, g.Path, g.Speed, Access(g) }).ToList();
            string[] head = ["Bus", "Addr", "Manufacturer", "Product", "ID", "Path", "Speed", "Access"];
            var widths = head.Select((h, i) => Math.Max(h.Length, rows.Max(r => r[i].Length))).ToArray();
            Console.WriteLine(string.Join("  ", head.Select((h, i) => h.PadRight(widths[i]))).TrimEnd());
            foreach (var r in rows) Console.WriteLine(string.Join("  ", r.Select((c, i) => c.PadRight(widths[i]))).TrimEnd());
            return 0;
        });
        return cmd;

        static string Or(string s) => s.Length == 0 ? "-" : s;
        // whether `serve --usb`/`usb forward` as this user will be able to open it (otherwise: the udev rule)
        static string Access(Usb9pfsGadget g) => Posix.Native.Libc.Access(g.DeviceNode, 6) ? "ok" : "no permission";
    }

    private static Command Forward()
    {
        var gadgets = new GadgetOptions();
        var host = new Option<string>("--host", "-s") { Description = "the 9P server to forward to", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port", "-p") { Description = "its TCP port (p9_fwd.py's default too)", DefaultValueFactory = _ => ForwardDefaultPort };
        var cmd = new Command("forward", "relay usb9pfs gadgets to a 9P server over TCP (diod, or serve --9p), as tools/usb/p9_fwd.py connect does; re-attaches when a gadget comes back");
        gadgets.AddTo(cmd);
        cmd.Options.Add(host);
        cmd.Options.Add(port);
        cmd.SetAction(async (parseResult, ct) =>
        {
            LongRunningRuntime.Enter();
            var filter = gadgets.Filter(parseResult);
            int p = parseResult.GetValue(port);
            if (p is < 1 or > 65535) throw new UserFacingException($"--port {p} is not a TCP port");
            var forwarder = new NinePForwarder(parseResult.GetValue(host)!, p, Log);
            Console.WriteLine($"forwarding usb9pfs gadgets ({filter}) to the 9P server {forwarder.Server}");
            Console.Out.Flush();
            using var stop = new StopSignal(ct);
            await new GadgetSupervisor(filter, forwarder.RunAsync, Log).RunAsync(stop.Token);
            Console.WriteLine("stopped");
            return 0;
        });
        return cmd;
    }

    internal static void Log(string line)
    {
        Console.Error.WriteLine(line);
        Console.Error.Flush();
    }

    /// <summary>The board-side lines for a usbg root: mount, kernel command line, and the buflen that caps msize.</summary>
    public static IEnumerable<string> BoardHints(string exportPath, string udc, int buflen)
    {
        var endpoint = new UsbgEndpoint(udc, exportPath, Buflen: buflen);
        yield return $"board:   mount -t 9p -o {endpoint.MountOptions} {udc} /mnt   (the source is the configfs instance name, usb9pfs.{udc})";
        yield return $"cmdline: {KernelCmdline.For(endpoint, new CmdlineOptions())}";
        if (buflen == TransportDefaults.UsbgBuflen)
            yield return $"buflen:  msize is capped by the gadget's buflen ({TransportDefaults.UsbgBuflen} by default), one request per USB round trip: " +
                         $"for throughput write 1048576 to functions/usb9pfs.{udc}/buflen on the board before binding the UDC and pass --buflen 1048576 here (and to `rootfs-export cmdline`)";
        else
            yield return $"buflen:  {buflen} (the board must write it to functions/usb9pfs.{udc}/buflen before binding the UDC; msize={endpoint.EffectiveMsize})";
    }
}

/// <summary>--vid, --pid, --path: which gadgets a usb command uses (every usb9pfs gadget by default).</summary>
public sealed class GadgetOptions
{
    public readonly Option<string?> Vid = new("--vid") { Description = "only gadgets with this vendor id (hex, e.g. 1d6b)" };
    public readonly Option<string?> Pid = new("--pid") { Description = "only gadgets with this product id (hex, e.g. 0109)" };
    public readonly Option<string?> Path = new("--path") { Description = "only the gadget at this port, BUS-PORT[.PORT…] (e.g. 2-1.1.2, as p9_fwd.py --path and `usb list`)" };

    public void AddTo(Command cmd)
    {
        cmd.Options.Add(Vid);
        cmd.Options.Add(Pid);
        cmd.Options.Add(Path);
    }

    public GadgetFilter Filter(ParseResult p) => GadgetFilter.Parse(p.GetValue(Vid), p.GetValue(Pid), p.GetValue(Path));
}
