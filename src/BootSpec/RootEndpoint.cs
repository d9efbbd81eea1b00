using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace RootfsExport.BootSpec;

/// <summary>
/// Defaults shared by the boot entry writer and the serve commands, so the command line a board boots
/// with and the port/tag/aname a server listens on come from one place.
/// </summary>
public static class TransportDefaults
{
    /// <summary>
    /// NFS (and MOUNT on the same port): 3049, as runqemu uses, an unprivileged port so an ordinary user can
    /// serve it; the kernel needs port= and mountport= because there is no portmapper registration.
    /// </summary>
    public const int NfsPort = 3049;

    /// <summary>9P over TCP: 5640, unprivileged (the IANA 9P port 564 needs root); the test rigs use it too.</summary>
    public const int NinePTcpPort = 5640;

    /// <summary>
    /// msize for tcp and virtio: 512 KiB. Linux 6.12 asks for 128 KiB + 24 by default; 9P reads are
    /// latency-bound, so bigger messages help. The server answers min(client, server), and kernels whose
    /// transport allows less (old virtio: about 500 KB) clamp it themselves, so this is never an error.
    /// </summary>
    public const int NinePMsize = 512 * 1024;

    /// <summary>
    /// The usb9pfs gadget's default <c>buflen</c> (configfs). It is the usbg transport's maxsize, so it caps
    /// msize over USB; rsinit does not change it.
    /// </summary>
    public const int UsbgBuflen = 16384;

    /// <summary>
    /// cache=mmap: page cache for file data (and writable shared mmap), but no cached dentries or attributes,
    /// so every lookup asks the server. The export changes under a running board (update/watch/dev); with
    /// cache=loose the Linux client never revalidates what it has cached, and a replaced, new or removed file
    /// stays as it was on the board until remount (docs/DEVLOOP.md).
    /// </summary>
    public const string NinePCache = "mmap";

    /// <summary>
    /// access=user: the client attaches once per board uid (Tattach n_uname), so a file a daemon creates after
    /// dropping root belongs to that daemon, as on a local disk, and the server checks permissions for it from
    /// files.db. access=any shares root's attach (new files of every user become root's); access=0 locks out
    /// every uid but 0. See docs/NINEP.md.
    /// </summary>
    public const string NinePAccess = "user";

    /// <summary>The attach name; the server maps it (and files' owners) through the pseudo database.</summary>
    public const string NinePUname = "root";

    /// <summary>NBD: 10809, the IANA port (unprivileged); a board of its own on each port from there (docs/NBD.md).</summary>
    public const int NbdPort = 10809;

    /// <summary>virtio mount_tag used when none is given (must match QEMU's <c>mount_tag=</c>).</summary>
    public const string VirtioTag = "rootfs";

    /// <summary>Linux refuses a smaller msize.</summary>
    public const int MinMsize = 4096;

    /// <summary>Linux limits msize to 4 MiB on every transport since the 2022 msize series.</summary>
    public const int MaxMsize = 4 * 1024 * 1024;
}

/// <summary>How a board reaches its root filesystem: one record per transport.</summary>
public abstract record RootEndpoint
{
    /// <summary>The transport's name as the CLI spells it (nfs, tcp, usbg, virtio).</summary>
    public abstract string Transport { get; }

    /// <summary>Throws <see cref="BootSpecException"/> naming the first bad field.</summary>
    public abstract void Validate();
}

/// <summary>
/// NFSv3 over TCP from a user-space server with NFS and MOUNT on one port (no portmapper, no lockd).
/// </summary>
/// <param name="Host">The address the board dials (IPv4: nfsroot and ip= autoconfiguration are IPv4-only).</param>
/// <param name="ExportPath">Absolute path of the export on the server, as the MOUNT protocol is asked for it.</param>
/// <param name="Port">NFS and MOUNT port.</param>
public sealed record NfsEndpoint(IPAddress Host, string ExportPath, int Port = TransportDefaults.NfsPort) : RootEndpoint
{
    public override string Transport => "nfs";

    public override void Validate()
    {
        Check.Server(Host);
        Check.ExportPath(ExportPath);
        Check.Port(Port);
    }

    /// <summary><c>&lt;ip&gt;:&lt;path&gt;,v3,tcp,port=P,mountport=P,nolock</c>, the value of the kernel's nfsroot=.</summary>
    public string NfsRoot
    {
        get
        {
            Validate();
            return $"{Host}:{ExportPath},v3,tcp,port={Port},mountport={Port},nolock";
        }
    }
}

/// <summary>
/// 9P2000.L over TCP. <see cref="MountOptions"/> is both the kernel's rootflags= and the -o of a runtime
/// <c>mount -t 9p</c>, so the end-to-end tests mount exactly what a board boots with.
/// </summary>
/// <param name="Host">The server address the client dials (IPv4, for kernel IP autoconfiguration).</param>
/// <param name="Aname">Attach name: the absolute export path on the server.</param>
public sealed record NinePTcpEndpoint(
    IPAddress Host,
    string Aname,
    int Port = TransportDefaults.NinePTcpPort,
    int Msize = TransportDefaults.NinePMsize,
    string Cache = TransportDefaults.NinePCache,
    string Access = TransportDefaults.NinePAccess) : RootEndpoint
{
    public override string Transport => "tcp";

    public override void Validate()
    {
        Check.Server(Host);
        NinePAttach.Validate(Aname, Access);
        Check.Port(Port);
        Check.Msize(Msize);
        Check.Cache(Cache);
    }

    /// <summary><c>trans=tcp,port=P,version=9p2000.L,msize=M,cache=C,uname=root,access=A,dfltuid=0,dfltgid=0,aname=PATH</c>.</summary>
    public string MountOptions
    {
        get
        {
            Validate();
            return $"trans=tcp,port={Port},version=9p2000.L,msize={Msize},{NinePAttach.Options(Cache, Access, Aname)}";
        }
    }

    /// <summary>The same mount at run time: <c>mount -t 9p -o &lt;options&gt; &lt;host&gt; &lt;mountpoint&gt;</c>.</summary>
    public string MountCommand(string mountPoint) => $"mount -t 9p -o {MountOptions} {Host} {mountPoint}";
}

/// <summary>
/// 9P over the usb9pfs gadget (Linux ≥ 6.12, CONFIG_NET_9P_USBG): the board is the USB device, the host
/// forwards to the 9P server. Needs an initramfs that creates the gadget (see <see cref="UsbGadgetSetup"/>).
/// </summary>
/// <param name="Udc">The UDC name, which is also the configfs instance name and the mount source (e.g. ci_hdrc.0).</param>
/// <param name="Aname">Absolute export path on the server.</param>
/// <param name="Msize">
/// Omitted by default: the transport's maxsize is the gadget's buflen, so the kernel clamps its own default to it.
/// When given it must not exceed <paramref name="Buflen"/>.
/// </param>
/// <param name="Buflen">The gadget's configfs buflen; only a non-default value makes the set-up write it.</param>
public sealed record UsbgEndpoint(
    string Udc,
    string Aname,
    int? Msize = null,
    string Access = TransportDefaults.NinePAccess,
    int Buflen = TransportDefaults.UsbgBuflen) : RootEndpoint
{
    public override string Transport => "usbg";

    /// <summary>The msize written into the options: the one given, else the buflen when it was raised, else none.</summary>
    public int? EffectiveMsize => Msize ?? (Buflen != TransportDefaults.UsbgBuflen ? Buflen : null);

    public override void Validate()
    {
        Check.Udc(Udc);
        NinePAttach.Validate(Aname, Access);
        if (Buflen < TransportDefaults.MinMsize || Buflen > TransportDefaults.MaxMsize)
            throw new BootSpecException("buflen", $"{Buflen} is outside {TransportDefaults.MinMsize}..{TransportDefaults.MaxMsize}");
        if (Msize is int m)
        {
            Check.Msize(m);
            if (m > Buflen)
                throw new BootSpecException("msize", $"{m} exceeds the usb9pfs gadget buflen {Buflen}; raise the buflen as well (the initramfs must write it to configfs before binding the UDC; rsinit does not)");
        }
    }

    /// <summary><c>trans=usbg,cache=mmap,uname=root,access=any,dfltuid=0,dfltgid=0,aname=PATH[,msize=N]</c>.</summary>
    public string MountOptions
    {
        get
        {
            Validate();
            var o = $"trans=usbg,{NinePAttach.Options(TransportDefaults.NinePCache, Access, Aname)}";
            return EffectiveMsize is int m ? o + $",msize={m}" : o;
        }
    }
}

/// <summary>
/// The attach part of a 9P mount that our server answers, the same over TCP and usb9pfs: cache mode, the user
/// the client attaches as, access mode, owners of files the server does not name, and the export as aname.
/// </summary>
internal static class NinePAttach
{
    public static void Validate(string aname, string access)
    {
        Check.ExportPath(aname, "aname");
        Check.Access(access);
    }

    /// <summary><c>cache=C,uname=root,access=A,dfltuid=0,dfltgid=0,aname=PATH</c>.</summary>
    public static string Options(string cache, string access, string aname) =>
        $"cache={cache},uname={TransportDefaults.NinePUname},access={access},dfltuid=0,dfltgid=0,aname={aname}";
}

/// <summary>9P over virtio (QEMU's own 9P server, <c>-device virtio-9p-…,mount_tag=&lt;tag&gt;</c>); no initramfs needed.</summary>
public sealed record VirtioEndpoint(
    string Tag = TransportDefaults.VirtioTag,
    int Msize = TransportDefaults.NinePMsize,
    string Cache = TransportDefaults.NinePCache) : RootEndpoint
{
    public override string Transport => "virtio";

    public override void Validate()
    {
        Check.Tag(Tag);
        Check.Msize(Msize);
        Check.Cache(Cache);
    }

    /// <summary><c>trans=virtio,version=9p2000.L,msize=M,cache=C</c>.</summary>
    public string MountOptions
    {
        get
        {
            Validate();
            return $"trans=virtio,version=9p2000.L,msize={Msize},cache={Cache}";
        }
    }
}

/// <summary>Field checks shared by the endpoints and the command-line options.</summary>
public static partial class Check
{
    public static void Server(IPAddress? host, string field = "server")
    {
        if (host is null) throw new BootSpecException(field, "no address given");
        if (host.AddressFamily != AddressFamily.InterNetwork)
            throw new BootSpecException(field, $"'{host}' is not an IPv4 address (nfsroot= and kernel IP autoconfiguration are IPv4-only)");
        var b = host.GetAddressBytes();
        if (host.Equals(IPAddress.Any) || host.Equals(IPAddress.Broadcast) || b[0] >= 224)
            throw new BootSpecException(field, $"'{host}' is not an address a board can connect to");
    }

    /// <summary>Parses a dotted IPv4 address strictly (IPAddress.Parse accepts "1" or "1.2").</summary>
    public static IPAddress ParseServer(string text, string field = "server")
    {
        if (!DottedQuad().IsMatch(text) || !IPAddress.TryParse(text, out var ip))
            throw new BootSpecException(field, $"'{text}' is not an IPv4 address like 192.168.1.10");
        Server(ip, field);
        return ip;
    }

    public static void Port(int port, string field = "port")
    {
        if (port < 1 || port > 65535) throw new BootSpecException(field, $"{port} is outside 1..65535");
    }

    /// <summary>
    /// An absolute, normalised path without whitespace or commas: it goes into comma-separated mount options
    /// and a space-separated kernel command line, where neither can be quoted.
    /// </summary>
    public static void ExportPath(string? path, string field = "export path")
    {
        if (string.IsNullOrEmpty(path)) throw new BootSpecException(field, "no path given");
        if (path[0] != '/') throw new BootSpecException(field, $"'{path}' is not an absolute path");
        foreach (var c in path)
            if (char.IsWhiteSpace(c) || char.IsControl(c) || c == ',' || c == '"')
                throw new BootSpecException(field, $"'{path}' contains '{Printable(c)}', which cannot appear in a kernel command line or mount options");
        if (path.Length > 1 && (path.EndsWith('/') || path.Contains("//") || path.Split('/').Any(p => p is "." or "..")))
            throw new BootSpecException(field, $"'{path}' is not normalised (no '.', '..', '//' or trailing '/')");
    }

    public static void Msize(int msize, string field = "msize")
    {
        if (msize < TransportDefaults.MinMsize || msize > TransportDefaults.MaxMsize)
            throw new BootSpecException(field, $"{msize} is outside {TransportDefaults.MinMsize}..{TransportDefaults.MaxMsize}");
    }

    public static void Cache(string cache, string field = "cache")
    {
        if (cache is not ("none" or "readahead" or "mmap" or "loose" or "fscache"))
            throw new BootSpecException(field, $"'{cache}' is not one of none, readahead, mmap, loose, fscache");
    }

    public static void Access(string access, string field = "access")
    {
        if (access is "any" or "user" or "client") return;
        if (access.Length is > 0 and <= 10 && access.All(char.IsAsciiDigit)) return;
        throw new BootSpecException(field, $"'{access}' is not any, user, client or a numeric uid");
    }

    /// <summary>virtio mount tag: printable, no spaces or commas, at most 31 bytes (older QEMU refuses longer tags).</summary>
    public static void Tag(string? tag, string field = "tag")
    {
        if (string.IsNullOrEmpty(tag)) throw new BootSpecException(field, "no mount tag given");
        if (tag.Length > 31) throw new BootSpecException(field, $"'{tag}' is longer than 31 characters");
        foreach (var c in tag)
            if (c <= ' ' || c > '~' || c == ',' || c == '"')
                throw new BootSpecException(field, $"'{tag}' contains '{Printable(c)}'; use letters, digits and -_./:");
    }

    /// <summary>UDC / configfs instance name: at most 40 characters, no '/' (rsinit cuts root= at the first '/').</summary>
    public static void Udc(string? udc, string field = "udc")
    {
        if (string.IsNullOrEmpty(udc)) throw new BootSpecException(field, "no UDC name given (see /sys/class/udc on the board, e.g. ci_hdrc.0)");
        if (!UdcName().IsMatch(udc)) throw new BootSpecException(field, $"'{udc}' is not a UDC name (1-40 of A-Z a-z 0-9 _ . : -)");
    }

    public static void MachineId(string? id, string field = "machine-id")
    {
        if (id is null) return;
        if (!MachineIdPattern().IsMatch(id)) throw new BootSpecException(field, $"'{id}' is not 32 lowercase hexadecimal digits");
    }

    /// <summary>console=: a device and optional serial options (ttyS0, ttyAMA0,115200, ttymxc1,115200n8).</summary>
    public static void Console(string? console, string field = "console")
    {
        if (console is null) return;
        if (!ConsolePattern().IsMatch(console)) throw new BootSpecException(field, $"'{console}' is not a console like ttyS0,115200");
    }

    /// <summary>Extra kernel arguments: anything printable; a newline would end the options line of the entry.</summary>
    public static void Append(string? text, string field = "append")
    {
        if (text is null) return;
        if (text.Any(c => c is '\n' or '\r' or '\0')) throw new BootSpecException(field, "contains a line break");
    }

    private static string Printable(char c) => char.IsControl(c) || char.IsWhiteSpace(c) ? $"\\x{(int)c:x2}" : c.ToString();

    [GeneratedRegex(@"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$")]
    private static partial Regex DottedQuad();

    [GeneratedRegex(@"^[A-Za-z0-9_.:-]{1,40}$")]
    private static partial Regex UdcName();

    [GeneratedRegex(@"^[0-9a-f]{32}$")]
    private static partial Regex MachineIdPattern();

    [GeneratedRegex(@"^[A-Za-z][A-Za-z0-9_.]*(,[0-9]+[A-Za-z0-9]*)?$")]
    private static partial Regex ConsolePattern();
}
