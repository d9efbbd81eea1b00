using RootfsExport.Usb9pBridge.Native;

namespace RootfsExport.Usb9pBridge;

/// <summary>
/// One libusb context. A fresh context enumerates the bus from sysfs; libusb's own hotplug tracking needs a
/// running udevd (absent in initramfs-like and container set-ups), so callers that wait for gadgets to come
/// and go make a new UsbHost per scan instead of relying on it.
/// </summary>
public sealed unsafe class UsbHost : IDisposable
{
    private nint _context;

    private UsbHost(nint context) => _context = context;

    /// <summary>The libusb_context, for the event handling of transfers made in it.</summary>
    internal nint Context
    {
        get
        {
            ObjectDisposedException.ThrowIf(_context == 0, this);
            return _context;
        }
    }

    public static UsbHost Create()
    {
        int rc;
        nint ctx;
        try { rc = LibUsb.Init(out ctx); }
        catch (DllNotFoundException)
        {
            throw new UserFacingException("libusb-1.0 is not installed (libusb-1.0.so.0 not found): apt-get install libusb-1.0-0");
        }
        if (rc != 0) throw new UsbException("libusb_init", (UsbError)rc);
        return new UsbHost(ctx);
    }

    /// <summary>Every device with a usb9pfs interface that passes the filter, in bus/port order.</summary>
    public IReadOnlyList<Usb9pfsGadget> FindGadgets(GadgetFilter filter)
    {
        var found = new List<Usb9pfsGadget>();
        ForEachDevice(dev =>
        {
            if (Describe(dev) is { } g && filter.Matches(g)) found.Add(g);
            return false;
        });
        return found.OrderBy(g => g.Bus).ThenBy(g => g.Path, StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// Opens the gadget (same bus and address as when it was found) and claims its 9P interface. The link
    /// owns this host from then on: a libusb handle must not outlive its context.
    /// </summary>
    public UsbgLink Open(Usb9pfsGadget gadget)
    {
        UsbgLink? link = null;
        UsbException? failure = null;
        ForEachDevice(dev =>
        {
            if (LibUsb.GetBusNumber(dev) != gadget.Bus || LibUsb.GetDeviceAddress(dev) != gadget.Address) return false;
            int rc = LibUsb.Open(dev, out var handle);
            if (rc == (int)UsbError.Access) { failure = new UsbAccessDeniedException(gadget); return true; }
            if (rc != 0) { failure = new UsbException($"cannot open {gadget.DeviceNode} ({gadget.Path})", (UsbError)rc); return true; }
            // a kernel driver on the 9P interface (none exists today) would be detached while we hold it
            LibUsb.SetAutoDetachKernelDriver(handle, 1);
            rc = LibUsb.ClaimInterface(handle, gadget.Interface);
            if (rc != 0)
            {
                LibUsb.Close(handle);
                failure = rc == (int)UsbError.Busy
                    ? new UsbException($"interface {gadget.Interface} of {gadget.Path} is claimed by another program (p9_fwd.py, another rootfs-export?)", UsbError.Busy)
                    : new UsbException($"cannot claim interface {gadget.Interface} of {gadget.Path}", (UsbError)rc);
                return true;
            }
            link = new UsbgLink(this, handle, gadget);
            return true;
        });
        if (link != null) return link;
        throw failure ?? new UsbException($"{gadget.Path} is gone", UsbError.NoDevice);
    }

    private void ForEachDevice(Func<nint, bool> visit)
    {
        ObjectDisposedException.ThrowIf(_context == 0, this);
        nint count = LibUsb.GetDeviceList(_context, out var list);
        if (count < 0) throw new UsbException("libusb_get_device_list", (UsbError)count);
        try
        {
            for (nint i = 0; i < count; i++)
                if (visit(list[i])) break;
        }
        finally { LibUsb.FreeDeviceList(list, 1); }
    }

    /// <summary>The device as a usb9pfs gadget, or null when it has no FF/FF/09 interface with bulk IN and OUT.</summary>
    private static Usb9pfsGadget? Describe(nint dev)
    {
        byte* ports = stackalloc byte[8];
        int nports = LibUsb.GetPortNumbers(dev, ports, 8);
        if (nports <= 0) return null; // root hubs
        if (LibUsb.GetDeviceDescriptor(dev, out var dd) != 0) return null;
        int rc = LibUsb.GetActiveConfigDescriptor(dev, out var config);
        if (rc != 0) return null; // unconfigured: not enumerated yet
        try
        {
            for (int i = 0; i < config->bNumInterfaces; i++)
            {
                var itf = config->@interface[i];
                for (int a = 0; a < itf.num_altsetting; a++)
                {
                    var alt = itf.altsetting[a];
                    if (alt.bInterfaceClass != Usb9pfsGadget.InterfaceClass || alt.bInterfaceSubClass != Usb9pfsGadget.InterfaceSubClass
                        || alt.bInterfaceProtocol != Usb9pfsGadget.InterfaceProtocol) continue;
                    byte epIn = 0, epOut = 0;
                    int mpsIn = 0, mpsOut = 0;
                    for (int e = 0; e < alt.bNumEndpoints; e++)
                    {
                        var ep = alt.endpoint[e];
                        if ((ep.bmAttributes & 0x3) != 2) continue; // bulk only
                        if ((ep.bEndpointAddress & 0x80) != 0) { epIn = ep.bEndpointAddress; mpsIn = ep.wMaxPacketSize & 0x7ff; }
                        else { epOut = ep.bEndpointAddress; mpsOut = ep.wMaxPacketSize & 0x7ff; }
                    }
                    if (epIn == 0 || epOut == 0 || mpsIn == 0 || mpsOut == 0) continue;
                    int bus = LibUsb.GetBusNumber(dev);
                    var path = $"{bus}-{string.Join('.', new ReadOnlySpan<byte>(ports, nports).ToArray())}";
                    return new Usb9pfsGadget(path, bus, LibUsb.GetDeviceAddress(dev), dd.idVendor, dd.idProduct,
                        SpeedName(LibUsb.GetDeviceSpeed(dev)), SysfsString(path, "manufacturer"), SysfsString(path, "product"),
                        SysfsString(path, "serial"), alt.bInterfaceNumber, epIn, epOut, mpsIn, mpsOut);
                }
            }
            return null;
        }
        finally { LibUsb.FreeConfigDescriptor(config); }
    }

    /// <summary>Strings the kernel already read at enumeration: no need to open the device (or have permission).</summary>
    private static string SysfsString(string path, string attribute)
    {
        try { return File.ReadAllText($"/sys/bus/usb/devices/{path}/{attribute}").Trim(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return ""; }
    }

    private static string SpeedName(int speed) => speed switch
    {
        1 => "1.5 Mb/s",
        2 => "12 Mb/s",
        3 => "480 Mb/s",
        4 => "5 Gb/s",
        5 => "10 Gb/s",
        6 => "20 Gb/s",
        _ => "unknown speed",
    };

    public void Dispose()
    {
        if (_context != 0) LibUsb.Exit(_context);
        _context = 0;
    }
}
