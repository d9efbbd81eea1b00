using System.CommandLine;
using System.Net;
using RootfsExport.NineP.Server;
using RootfsExport.NineP.Transport;

namespace RootfsExport.Cli;

/// <summary>`serve`: the export over 9P2000.L with the pseudo database's ownership.</summary>
public static class ServeCommands
{
    public static IEnumerable<Command> Create()
    {
        var export = new Argument<string>("export") { Description = "the export directory (made by rootfs-export unpack or runqemu-extract-sdk)" };
        var ninep = new Option<string>("--9p") { Description = "listen address: tcp:HOST:PORT (default tcp:127.0.0.1:5640) or unix:/path", DefaultValueFactory = _ => "tcp:127.0.0.1:5640" };
        var trace = new Option<bool>("--trace") { Description = "log every 9P request and reply to stderr" };
        var cmd = new Command("serve", "serve an export over 9P2000.L (QEMU guests, boards over TCP); ownership comes from the pseudo database");
        cmd.Arguments.Add(export);
        cmd.Options.Add(ninep);
        cmd.Options.Add(trace);
        cmd.SetAction(async (parseResult, ct) =>
        {
            var address = ListenAddress.Parse(parseResult.GetValue(ninep)!);
            var dir = parseResult.GetValue(export)!;
            var options = new ServerOptions
            {
                Trace = parseResult.GetValue(trace) ? line => Console.Error.WriteLine(line) : null,
                Log = line => Console.Error.WriteLine(line),
            };
            using var server = ExportServer.Open(dir, options);
            using var listener = ExportServer.Bind(address);
            if (listener.LocalEndPoint is IPEndPoint ep) address = address with { Port = ep.Port };
            var exportPath = server.FileSystem.ExportPath;
            Console.WriteLine($"serving {exportPath} over 9P2000.L on {address}");
            foreach (var line in ClientHints(address, exportPath)) Console.WriteLine(line);
            Console.Out.Flush();

            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            ConsoleCancelEventHandler onCancel = (_, e) => { e.Cancel = true; stop.Cancel(); };
            Console.CancelKeyPress += onCancel;
            using var onTerm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
                System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });
            try { await server.Server.ListenAsync(listener, stop.Token); }
            finally
            {
                Console.CancelKeyPress -= onCancel;
                if (address.Scheme == "unix") try { File.Delete(address.SocketPath!); } catch { }
            }
            Console.WriteLine("stopped; the database is consistent");
            return 0;
        });
        yield return cmd;
    }

    /// <summary>
    /// The mount options and kernel command line a client needs for this export (the usbg root flags of
    /// Documentation/filesystems/9p.rst with trans=tcp). To be replaced by the boot issue's generator.
    /// </summary>
    public static string MountOptions(int port, string exportPath) =>
        $"trans=tcp,port={port},version=9p2000.L,cache=loose,uname=root,access=0,dfltuid=0,dfltgid=0,msize=1048576,aname={exportPath}";

    public static IEnumerable<string> ClientHints(ListenAddress address, string exportPath)
    {
        if (address.Scheme == "unix")
        {
            yield return $"clients: connect to {address.SocketPath} (e.g. socat to a TCP port for a QEMU guestfwd), aname={exportPath}";
            yield break;
        }
        var host = address.Host is "0.0.0.0" or "::" ? "<server-ip>" : address.Host;
        yield return $"mount:   mount -t 9p -o {MountOptions(address.Port, exportPath)} {host} /mnt";
        yield return $"cmdline: root={host} rootfstype=9p rootflags={MountOptions(address.Port, exportPath)} rw";
        if (address.Host is "127.0.0.1" or "::1" or "localhost")
            yield return $"QEMU:    -netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:{address.Port}-cmd:socat STDIO TCP:{address.Host}:{address.Port} (then mount 10.0.2.100)";
    }
}
