using System.Text.RegularExpressions;

namespace RootfsExport.Usb9pBridge;

/// <summary>
/// A USB device offering the usb9pfs function (interface class FF / subclass FF / protocol 09), as seen from
/// the host: where it is plugged in, who it says it is, and the bulk endpoints of the 9P interface.
/// </summary>
public sealed record Usb9pfsGadget(
    string Path,
    int Bus,
    int Address,
    ushort VendorId,
    ushort ProductId,
    string Speed,
    string Manufacturer,
    string Product,
    string Serial,
    int Interface,
    byte EndpointIn,
    byte EndpointOut,
    int MaxPacketSizeIn,
    int MaxPacketSizeOut)
{
    public const byte InterfaceClass = 0xff, InterfaceSubClass = 0xff, InterfaceProtocol = 0x09;

    /// <summary>The id the kernel documentation and p9_fwd.py use; gadgets may choose another.</summary>
    public const ushort ConventionalVendorId = 0x1d6b, ConventionalProductId = 0x0109;

    public string Id => $"{VendorId:x4}:{ProductId:x4}";

    /// <summary>usbfs node libusb opens: permissions on it decide whether we may talk to the gadget.</summary>
    public string DeviceNode => $"/dev/bus/usb/{Bus:000}/{Address:000}";

    public override string ToString() => $"{Path} ({Id} {Manufacturer} {Product}, bus {Bus} address {Address}, {Speed})";
}

/// <summary>Which gadgets to use: --vid/--pid and --path (BUS-PORT[.PORT…], the sysfs name, as p9_fwd.py's --path).</summary>
public sealed partial record GadgetFilter(ushort? VendorId = null, ushort? ProductId = null, string? Path = null)
{
    public static readonly GadgetFilter Any = new();

    public bool Matches(Usb9pfsGadget g) =>
        (VendorId is null || g.VendorId == VendorId) &&
        (ProductId is null || g.ProductId == ProductId) &&
        (Path is null || g.Path == Path);

    /// <summary>Checks the option values and names the bad one.</summary>
    public static GadgetFilter Parse(string? vid, string? pid, string? path)
    {
        return new GadgetFilter(Hex16(vid, "--vid"), Hex16(pid, "--pid"), PortPath(path));

        static ushort? Hex16(string? text, string option)
        {
            if (text is null) return null;
            var t = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? text[2..] : text;
            if (t.Length is < 1 or > 4 || !ushort.TryParse(t, System.Globalization.NumberStyles.HexNumber, null, out var v))
                throw new UserFacingException($"{option} '{text}' is not a 16-bit hexadecimal USB id (e.g. 1d6b)");
            return v;
        }
    }

    private static string? PortPath(string? path)
    {
        if (path is null) return null;
        if (!PortPathPattern().IsMatch(path))
            throw new UserFacingException($"--path '{path}' is not BUS-PORT[.PORT…] (e.g. 1-1 or 2-1.1.2, as in /sys/bus/usb/devices and `rootfs-export usb list`)");
        return path;
    }

    [GeneratedRegex(@"^[1-9][0-9]{0,2}-[1-9][0-9]{0,2}(\.[1-9][0-9]{0,2}){0,6}$")]
    private static partial Regex PortPathPattern();

    public override string ToString()
    {
        var parts = new List<string> { "interface FF/FF/09" };
        if (VendorId is not null || ProductId is not null) parts.Add($"id {(VendorId is { } v ? v.ToString("x4") : "*")}:{(ProductId is { } p ? p.ToString("x4") : "*")}");
        if (Path is not null) parts.Add($"path {Path}");
        return string.Join(", ", parts);
    }
}
