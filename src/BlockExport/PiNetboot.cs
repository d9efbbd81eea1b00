using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using RootfsExport.BootSpec;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.BlockExport;

/// <param name="Port">nbd: serve --nbd's base port; nfs: the NFS port</param>
public sealed record PiNetbootRequest(string Export, string Serial, string TftpRoot, string Transport, IPAddress Server, int? Port = null);

public sealed record PiNetbootResult(string Directory, string Firmware, int Linked, string Cmdline);

/// <summary>
/// Raspberry Pi network boot: the boot ROM asks TFTP for SERIAL/start4.elf, config.txt, the kernel, … and the
/// firmware reads SERIAL/cmdline.txt. TFTP-ROOT/SERIAL becomes a directory of our own holding a symlink to each
/// file and directory of the export's boot firmware directory (boot/firmware, else boot) and a cmdline.txt for
/// this Pi alone, so Pis sharing an export each get their own NBD board. It is built beside the old one and
/// swapped in with one rename: switching a Pi to another export is one command. The export is read through
/// confined handles only; entries the board made symlinks are not linked (a TFTP server would follow them).
/// </summary>
public static partial class PiNetboot
{
    public static PiNetbootResult Link(PiNetbootRequest r)
    {
        if (!SerialPattern().IsMatch(r.Serial)) throw new UserFacingException($"--serial: '{r.Serial}' is not a Pi serial number (8 lowercase hex digits, as the Pi asks for it over TFTP)");
        if (!Directory.Exists(r.TftpRoot)) throw new UserFacingException($"--tftp-root: {r.TftpRoot} is not a directory");
        var export = ExportPaths.Canonical(r.Export);
        var state = PseudoState.ForExport(export);
        if (!state.Exists) throw new UserFacingException($"'{export}' is not an export (no {state.FilesDbPath})");
        var cmdline = KernelCmdline.For(Endpoint(r, export, state), new CmdlineOptions(Console: "serial0,115200", Append: "rootwait"));

        using var exportRoot = HostDirectory.Open(export);
        var (firmwareRel, firmware) = OpenFirmware(exportRoot);
        using (firmware)
        using (var tftp = HostDirectory.Open(Path.GetFullPath(r.TftpRoot)))
        {
            var staging = $".{r.Serial}.new-{Environment.ProcessId}";
            tftp.RemoveTree(staging);
            tftp.CreateDirectory(staging, 0x1ed);
            int linked;
            using (var dir = tftp.OpenDirectory(staging))
            {
                linked = LinkEntries(firmware, dir, export + "/" + firmwareRel);
                WriteFile(dir, "cmdline.txt", cmdline + "\n");
            }
            if (tftp.TryStat(r.Serial, out _))
            {
                HostDirectory.Rename(tftp, staging, tftp, r.Serial, Libc.RENAME_EXCHANGE);
                tftp.RemoveTree(staging);
            }
            else HostDirectory.Rename(tftp, staging, tftp, r.Serial);
            return new PiNetbootResult(Path.Combine(Path.GetFullPath(r.TftpRoot), r.Serial), export + "/" + firmwareRel, linked, cmdline);
        }
    }

    private static RootEndpoint Endpoint(PiNetbootRequest r, string export, PseudoState state)
    {
        switch (r.Transport)
        {
            case "nbd":
                var ports = BoardPorts.Register(export, [r.Serial]);
                var image = ImageRegistry.Read(export).Images.FirstOrDefault(i => File.Exists(i) && ImageRecord.Read(i)?.Export == export);
                return new NbdEndpoint(r.Server, r.Serial, ports.PortOf(r.Serial, r.Port ?? TransportDefaults.NbdPort),
                    image is null ? null : VerityRoot.FromImageRecord(image));
            case "nfs":
                return new NfsEndpoint(r.Server, export, r.Port ?? TransportDefaults.NfsPort);
            default:
                throw new UserFacingException($"--transport: '{r.Transport}' is not nbd or nfs");
        }
    }

    /// <summary>boot/firmware (Raspberry Pi OS since bookworm) or boot, each step a real directory, never a symlink.</summary>
    private static (string Rel, HostDirectory Dir) OpenFirmware(HostDirectory export)
    {
        foreach (var rel in new[] { "boot/firmware", "boot" })
        {
            int fd = export.TryOpenBeneath(rel, Libc.O_RDONLY | Libc.O_DIRECTORY);
            if (fd >= 0) return (rel, HostDirectory.FromFd(fd));
        }
        throw new UserFacingException("the export has no boot/firmware or boot directory (symlinks are not followed) with the Pi's firmware");
    }

    private static int LinkEntries(HostDirectory firmware, HostDirectory into, string firmwarePath)
    {
        int linked = 0;
        foreach (var e in firmware.ReadEntries().OrderBy(e => e.Name, StringComparer.Ordinal))
        {
            if (e.Name == "cmdline.txt" || !firmware.TryStat(e.Name, out var st)) continue;
            if (!StMode.IsRegular(st.Mode) && !StMode.IsDirectory(st.Mode)) continue; // a board's symlink would be followed by the TFTP server
            into.CreateSymlink(e.Name, firmwarePath + "/" + e.Name);
            linked++;
        }
        return linked;
    }

    private static void WriteFile(HostDirectory dir, string name, string text)
    {
        int fd = dir.OpenFile(name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL, 0x1a4);
        using var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Write);
        stream.Write(Encoding.UTF8.GetBytes(text));
    }

    /// <summary>dnsmasq as a proxy DHCP server beside the network's own (it hands out no addresses) and the TFTP server.</summary>
    public static IEnumerable<string> DnsmasqLines(PiNetbootRequest r) =>
    [
        "port=0",
        $"dhcp-range={r.Server},proxy",
        "log-dhcp",
        "enable-tftp",
        $"tftp-root={Path.GetFullPath(r.TftpRoot)}",
        "pxe-service=0,\"Raspberry Pi Boot\"",
    ];

    [GeneratedRegex("^[0-9a-f]{8}$")]
    private static partial Regex SerialPattern();
}
