using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
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

/// <summary>
/// An opened usb9pfs gadget with its interface claimed. Owns the libusb context it was opened in.
/// Transfers use libusb's asynchronous API with one reusable transfer per direction and no transfer timeout:
/// the time limit is the event loop's wait (a poll timeout), so a request costs submit, poll and reap, and
/// none of the allocation and timerfd arming of libusb_bulk_transfer, whose timeouts the rig's strace showed
/// to be a third of the system calls per request.
/// </summary>
public sealed unsafe class UsbgLink : IBulkEndpoints, IDisposable
{
    private readonly UsbHost _host;
    private nint _handle;
    private LibUsbTransfer* _in, _out;
    private int* _done; // set by the completion callback of the transfer in flight

    internal UsbgLink(UsbHost host, nint handle, Usb9pfsGadget gadget)
    {
        _host = host;
        _handle = handle;
        Gadget = gadget;
        _in = LibUsb.AllocTransfer(0);
        _out = LibUsb.AllocTransfer(0);
        _done = (int*)NativeMemory.AllocZeroed(sizeof(int));
        if (_in == null || _out == null) throw new UsbException("libusb_alloc_transfer", UsbError.NoMem);
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
        fixed (byte* p = buffer) return Transfer(_in, Gadget.EndpointIn, p, buffer.Length, timeoutMs, out transferred);
    }

    public UsbError WriteOut(ReadOnlySpan<byte> data, uint timeoutMs, out int transferred)
    {
        // libusb takes a non-const buffer for both directions; OUT transfers only read it
        fixed (byte* p = data) return Transfer(_out, Gadget.EndpointOut, p, data.Length, timeoutMs, out transferred);
    }

    /// <summary>
    /// One bulk transfer, waited for at most timeoutMs; on time-out it is cancelled and what arrived so far is
    /// reported with Timeout (libusb_bulk_transfer's contract). The buffer stays pinned by the caller's
    /// <c>fixed</c>, as the transfer never outlives this call.
    /// </summary>
    private UsbError Transfer(LibUsbTransfer* t, byte endpoint, byte* buffer, int length, uint timeoutMs, out int transferred)
    {
        var ctx = _host.Context;
        t->dev_handle = Handle;
        t->flags = 0;
        t->endpoint = endpoint;
        t->type = LibUsb.TransferTypeBulk;
        t->timeout = 0;
        t->buffer = buffer;
        t->length = length;
        t->actual_length = 0;
        t->callback = &OnComplete;
        t->user_data = _done;
        t->num_iso_packets = 0;
        *_done = 0;
        int rc = LibUsb.SubmitTransfer(t);
        if (rc != 0)
        {
            transferred = 0;
            return (UsbError)rc;
        }
        bool timedOut = false;
        UsbError? failed = null;
        long deadline = Environment.TickCount64 + timeoutMs;
        while (*_done == 0)
        {
            long left = deadline - Environment.TickCount64;
            if (left <= 0 || failed != null)
            {
                timedOut = failed == null;
                Drain(t, ctx);
                break;
            }
            var tv = new TimeVal { tv_sec = left / 1000, tv_usec = left % 1000 * 1000 };
            rc = LibUsb.HandleEventsTimeoutCompleted(ctx, &tv, _done);
            if (rc != 0 && rc != (int)UsbError.Interrupted) failed = (UsbError)rc;
        }
        transferred = t->actual_length;
        if (failed != null) return failed.Value;
        return (UsbTransferStatus)t->status switch
        {
            UsbTransferStatus.Completed => UsbError.Success,
            UsbTransferStatus.Cancelled or UsbTransferStatus.TimedOut when timedOut => UsbError.Timeout,
            UsbTransferStatus.Stall => UsbError.Pipe,
            UsbTransferStatus.NoDevice => UsbError.NoDevice,
            UsbTransferStatus.Overflow => UsbError.Overflow,
            _ => UsbError.Io,
        };
    }

    /// <summary>Cancels the transfer and handles events until its callback ran (bounded: a device gone stops answering).</summary>
    private void Drain(LibUsbTransfer* t, nint ctx)
    {
        LibUsb.CancelTransfer(t);
        long giveUp = Environment.TickCount64 + 5000;
        while (*_done == 0)
        {
            if (Environment.TickCount64 > giveUp)
            {
                // the kernel still owns the transfer: never reuse or free it
                if (t == _in) _in = null; else _out = null;
                _handle = 0; // the link is unusable; Dispose closes nothing more
                throw new UsbException($"{Description}: a cancelled transfer never completed", UsbError.Io);
            }
            var tv = new TimeVal { tv_sec = 0, tv_usec = 100_000 };
            LibUsb.HandleEventsTimeoutCompleted(ctx, &tv, _done);
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnComplete(LibUsbTransfer* t) => *(int*)t->user_data = 1;

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
        if (_in != null) LibUsb.FreeTransfer(_in);
        if (_out != null) LibUsb.FreeTransfer(_out);
        _in = _out = null;
        _host.Dispose();
        if (_done != null) NativeMemory.Free(_done);
        _done = null;
    }
}
