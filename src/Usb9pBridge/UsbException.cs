using RootfsExport.Usb9pBridge.Native;

namespace RootfsExport.Usb9pBridge;

/// <summary>
/// A libusb call failed. An IOException, so the 9P server treats it like a dropped connection: the session's
/// fids go, the gadget is looked for again.
/// </summary>
public class UsbException(string what, UsbError error) : IOException($"{what}: {LibUsb.ErrorName((int)error)}")
{
    public UsbError Error { get; } = error;

    /// <summary>The device went away (unplugged, board rebooted, UDC unbound): expected, not worth a stack trace.</summary>
    public bool DeviceGone => Error is UsbError.NoDevice or UsbError.Io or UsbError.Pipe or UsbError.NotFound;
}

/// <summary>The device node exists but this user may not open it: the fix is a udev rule, printed with the error.</summary>
public sealed class UsbAccessDeniedException(Usb9pfsGadget gadget)
    : UsbException($"no permission to open {gadget.DeviceNode} ({gadget.Path}, {gadget.Id})", UsbError.Access)
{
    public Usb9pfsGadget Gadget { get; } = gadget;

    /// <summary>A rule that gives the logged-in user (uaccess) and group plugdev access to usb9pfs gadgets.</summary>
    public static string UdevRule(ushort vid, ushort pid) =>
        $"SUBSYSTEM==\"usb\", ATTR{{idVendor}}==\"{vid:x4}\", ATTR{{idProduct}}==\"{pid:x4}\", MODE=\"0660\", GROUP=\"plugdev\", TAG+=\"uaccess\"";

    public string Hint =>
        $"""
        {Message}
          fix: as root, install a udev rule and re-plug the board (or re-bind its UDC):
            echo '{UdevRule(Gadget.VendorId, Gadget.ProductId)}' > /etc/udev/rules.d/70-usb9pfs.rules
            udevadm control --reload && udevadm trigger --subsystem-match=usb
          (for this session only: sudo chmod a+rw {Gadget.DeviceNode})
        """;
}
