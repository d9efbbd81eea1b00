using RootfsExport.Usb9pBridge.Native;

namespace RootfsExport.Usb9pBridge;

/// <summary>The two bulk endpoints of a usb9pfs interface, as the framing sees them (a USB pipe, or a model of one in tests).</summary>
public interface IBulkEndpoints
{
    /// <summary>
    /// One bulk IN transfer into buffer: ends when the buffer is full, on a short packet or on a zero-length
    /// packet (Success), or when the timeout passes (Timeout, with the bytes received so far in transferred).
    /// </summary>
    UsbError ReadIn(Span<byte> buffer, uint timeoutMs, out int transferred);

    /// <summary>One bulk OUT transfer of all of data (an empty span sends a zero-length packet).</summary>
    UsbError WriteOut(ReadOnlySpan<byte> data, uint timeoutMs, out int transferred);

    int MaxPacketSizeIn { get; }
    int MaxPacketSizeOut { get; }
    string Description { get; }
}

/// <summary>An opened usb9pfs gadget with its interface claimed. Owns the libusb context it was opened in.</summary>
public sealed unsafe class UsbgLink : IBulkEndpoints, IDisposable
{
    private readonly UsbHost _host;
    private nint _handle;

    internal UsbgLink(UsbHost host, nint handle, Usb9pfsGadget gadget)
    {
        _host = host;
        _handle = handle;
        Gadget = gadget;
    }

    public Usb9pfsGadget Gadget { get; }
    public int MaxPacketSizeIn => Gadget.MaxPacketSizeIn;
    public int MaxPacketSizeOut => Gadget.MaxPacketSizeOut;
    public string Description => $"usb {Gadget.Path}";

    /// <summary>Finds nothing new: opens exactly this gadget in a context of its own.</summary>
    public static UsbgLink Open(Usb9pfsGadget gadget)
    {
        var host = UsbHost.Create();
        try { return host.Open(gadget); }
        catch
        {
            host.Dispose();
            throw;
        }
    }

    public UsbError ReadIn(Span<byte> buffer, uint timeoutMs, out int transferred)
    {
        fixed (byte* p = buffer)
            return (UsbError)LibUsb.BulkTransfer(Handle, Gadget.EndpointIn, p, buffer.Length, out transferred, timeoutMs);
    }

    public UsbError WriteOut(ReadOnlySpan<byte> data, uint timeoutMs, out int transferred)
    {
        // libusb_bulk_transfer takes a non-const pointer for both directions; OUT transfers only read it
        fixed (byte* p = data)
            return (UsbError)LibUsb.BulkTransfer(Handle, Gadget.EndpointOut, p, data.Length, out transferred, timeoutMs);
    }

    private nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle == 0, this);
            return _handle;
        }
    }

    public void Dispose()
    {
        if (_handle != 0)
        {
            LibUsb.ReleaseInterface(_handle, Gadget.Interface);
            LibUsb.Close(_handle);
            _handle = 0;
        }
        _host.Dispose();
    }
}
