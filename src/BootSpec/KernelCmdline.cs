using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace RootfsExport.BootSpec;

/// <summary>What goes on the command line besides the root: console, IP autoconfiguration, rw, extras.</summary>
/// <param name="Console">console= value (ttyAMA0,115200), or null for none.</param>
/// <param name="Ip">
/// ip= value. Null means the transport's default: <c>dhcp</c> for network roots (nfs, tcp), none for usbg and virtio.
/// </param>
/// <param name="ReadWrite">Appends <c>rw</c> (rsinit and the kernel mount the root read-only otherwise).</param>
/// <param name="Append">Further arguments, appended verbatim at the end.</param>
public sealed record CmdlineOptions(string? Console = null, string? Ip = null, bool ReadWrite = true, string? Append = null)
{
    public void Validate()
    {
        Check.Console(Console);
        if (Ip is not null) IpConfig.Validate(Ip);
        Check.Append(Append);
    }
}

/// <summary>Builds kernel command lines for each transport; pure.</summary>
public static class KernelCmdline
{
    /// <summary>The whole command line: console, root (see <see cref="RootArguments"/>), ip=, rw, extras.</summary>
    public static string For(RootEndpoint endpoint, CmdlineOptions? options = null)
    {
        options ??= new CmdlineOptions();
        options.Validate();
        var args = new List<string>();
        if (options.Console is not null) args.Add($"console={options.Console}");
        args.AddRange(RootArguments(endpoint));
        return Finish(args, endpoint, options);
    }

    /// <summary>
    /// The command line without any root=, for a boot loader that appends the root itself
    /// (barebox <c>linux-appendroot true</c>, which also appends the NIC's ip=).
    /// </summary>
    public static string WithoutRoot(RootEndpoint endpoint, CmdlineOptions? options = null)
    {
        options ??= new CmdlineOptions();
        options.Validate();
        endpoint.Validate();
        var args = new List<string>();
        if (options.Console is not null) args.Add($"console={options.Console}");
        if (options.Ip is not null) args.Add($"ip={options.Ip}");
        if (options.ReadWrite) args.Add("rw");
        if (!string.IsNullOrWhiteSpace(options.Append)) args.Add(options.Append.Trim());
        return string.Join(' ', args);
    }

    /// <summary>root=, rootfstype=, rootflags= / nfsroot= for the endpoint.</summary>
    public static IReadOnlyList<string> RootArguments(RootEndpoint endpoint)
    {
        endpoint.Validate();
        return endpoint switch
        {
            NfsEndpoint n => ["root=/dev/nfs", $"nfsroot={n.NfsRoot}"],
            // The server address is the mount source; IP autoconfiguration (ip=) runs before the root mount.
            NinePTcpEndpoint t => [$"root={t.Host}", "rootfstype=9p", $"rootflags={t.MountOptions}"],
            UsbgEndpoint u => [$"root={u.Udc}", "rootfstype=9p", $"rootflags={u.MountOptions}"],
            VirtioEndpoint v => [$"root={v.Tag}", "rootfstype=9p", $"rootflags={v.MountOptions}"],
            NbdEndpoint b => b.RootArguments(),
            _ => throw new ArgumentException($"unknown endpoint {endpoint.GetType().Name}", nameof(endpoint)),
        };
    }

    /// <summary>True when the root needs the network, so ip= defaults to dhcp.</summary>
    public static bool NeedsNetwork(RootEndpoint endpoint) => endpoint is NfsEndpoint or NinePTcpEndpoint or NbdEndpoint;

    private static string Finish(List<string> args, RootEndpoint endpoint, CmdlineOptions options)
    {
        var ip = options.Ip ?? (NeedsNetwork(endpoint) ? "dhcp" : null);
        if (ip is not null) args.Add($"ip={ip}");
        if (endpoint is NbdEndpoint { Verity: not null }) args.Add("ro"); // dm-verity is read-only
        else if (options.ReadWrite) args.Add("rw");
        if (!string.IsNullOrWhiteSpace(options.Append)) args.Add(options.Append.Trim());
        return string.Join(' ', args);
    }
}

/// <summary>The kernel's ip= parameter (CONFIG_IP_PNP).</summary>
public static partial class IpConfig
{
    private static readonly string[] Autoconf = ["off", "none", "on", "any", "dhcp", "bootp", "rarp", "both"];

    /// <summary>
    /// Accepts a bare method (<c>dhcp</c>) or the colon form
    /// <c>client:server:gw:netmask:hostname:device:autoconf:dns0:dns1:ntp0</c> (trailing fields optional).
    /// </summary>
    public static void Validate(string value)
    {
        const string field = "ip";
        if (value.Length == 0) throw new BootSpecException(field, "empty value (use dhcp, off or client:server:gw:netmask:hostname:device:autoconf)");
        if (value.Any(c => c <= ' ' || c > '~')) throw new BootSpecException(field, $"'{value}' contains a space or non-ASCII character");
        if (!value.Contains(':'))
        {
            if (Autoconf.Contains(value)) return;
            if (IsIPv4(value)) return; // ip=<client> alone is the first field of the colon form
            throw new BootSpecException(field, $"'{value}' is neither an autoconfiguration method ({string.Join(", ", Autoconf)}) nor client:server:gw:netmask:hostname:device:autoconf");
        }
        var f = value.Split(':');
        if (f.Length > 10) throw new BootSpecException(field, $"'{value}' has {f.Length} fields; ip= has at most 10");
        string[] names = ["client", "server", "gateway", "netmask", "hostname", "device", "autoconf", "dns0", "dns1", "ntp0"];
        for (int i = 0; i < f.Length; i++)
        {
            var v = f[i];
            if (v.Length == 0) continue;
            switch (i)
            {
                case 4:
                    if (!HostName().IsMatch(v)) throw new BootSpecException(field, $"hostname '{v}' is not a host name");
                    break;
                case 5:
                    if (!Device().IsMatch(v)) throw new BootSpecException(field, $"device '{v}' is not a network interface name");
                    break;
                case 6:
                    if (!Autoconf.Contains(v)) throw new BootSpecException(field, $"autoconf '{v}' is not one of {string.Join(", ", Autoconf)}");
                    break;
                default:
                    if (!IsIPv4(v)) throw new BootSpecException(field, $"{names[i]} '{v}' is not an IPv4 address");
                    break;
            }
        }
    }

    private static bool IsIPv4(string s) => DottedQuad().IsMatch(s) && IPAddress.TryParse(s, out _);

    [GeneratedRegex(@"^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$")]
    private static partial Regex DottedQuad();

    [GeneratedRegex(@"^[A-Za-z0-9]([A-Za-z0-9.-]{0,62})$")]
    private static partial Regex HostName();

    [GeneratedRegex(@"^[A-Za-z0-9_.-]{1,15}$")]
    private static partial Regex Device();
}

/// <summary>barebox's boot command for an export on an NFS server.</summary>
public static class BareboxLine
{
    /// <summary>
    /// <c>boot nfs://&lt;host&gt;:&lt;port&gt;//&lt;abs export&gt;</c> (RFC 2224: the double slash makes the path
    /// absolute). barebox then reads the entries in &lt;export&gt;/loader/entries over NFSv3/UDP; null for
    /// transports barebox cannot boot from by URI.
    /// </summary>
    public static string? For(RootEndpoint endpoint)
    {
        endpoint.Validate();
        return endpoint is NfsEndpoint n ? $"boot nfs://{n.Host}:{n.Port}/{n.ExportPath}" : null;
    }
}

/// <summary>
/// The usb9pfs gadget set-up an initramfs must do before it can mount a usbg root, as rsinit does it
/// (configfs, gadget 1d6b:0109, one configuration, function usb9pfs.&lt;udc&gt;, bind to the UDC).
/// </summary>
public static class UsbGadgetSetup
{
    /// <summary>The steps as a shell script ending in the root mount on /newroot.</summary>
    public static string Script(UsbgEndpoint u)
    {
        u.Validate();
        var fn = $"functions/usb9pfs.{u.Udc}";
        var s = new StringBuilder();
        s.Append("# usb9pfs gadget set-up the initramfs does before mounting the root (rsinit does this itself)\n");
        s.Append("mount -t configfs -o nosuid,noexec,nodev configfs /sys/kernel/config\n");
        s.Append("mkdir /sys/kernel/config/usb_gadget/9pfs\n");
        s.Append("cd /sys/kernel/config/usb_gadget/9pfs\n");
        s.Append("echo 0x1d6b > idVendor\n");
        s.Append("echo 0x0109 > idProduct\n");
        s.Append("mkdir strings/0x409\n");
        s.Append("echo 01234567 > strings/0x409/serialnumber\n");
        s.Append("echo 'Pengutronix e.K.' > strings/0x409/manufacturer\n");
        s.Append("echo '9PFS Gadget' > strings/0x409/product\n");
        s.Append("mkdir configs/c.1\n");
        s.Append("mkdir configs/c.1/strings/0x409\n");
        s.Append($"mkdir {fn}\n");
        if (u.Buflen != TransportDefaults.UsbgBuflen)
            s.Append($"echo {u.Buflen} > {fn}/buflen  # not done by rsinit; must precede binding\n");
        s.Append($"ln -s {fn} configs/c.1/usb9pfs.{u.Udc}\n");
        s.Append($"echo {u.Udc} > UDC\n");
        s.Append("sleep 1\n");
        s.Append($"mount -t 9p -o {u.MountOptions} {u.Udc} /newroot\n");
        return s.ToString();
    }
}
