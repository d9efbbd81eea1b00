using System.Runtime.InteropServices;

namespace RootfsExport.Usb9pBridge.Native;

// A thin binding to Debian's libusb-1.0 (package libusb-1.0-0): only the synchronous calls the usb9pfs host
// side needs. Struct layouts are libusb.h's (1.0.x, stable ABI); pointers to them stay unmanaged.

/// <summary>libusb_error.</summary>
public enum UsbError
{
    Success = 0,
    Io = -1,
    InvalidParam = -2,
    Access = -3,
    NoDevice = -4,
    NotFound = -5,
    Busy = -6,
    Timeout = -7,
    Overflow = -8,
    Pipe = -9,
    Interrupted = -10,
    NoMem = -11,
    NotSupported = -12,
    Other = -99,
}

[StructLayout(LayoutKind.Sequential)]
public struct LibUsbDeviceDescriptor
{
    public byte bLength;
    public byte bDescriptorType;
    public ushort bcdUSB;
    public byte bDeviceClass;
    public byte bDeviceSubClass;
    public byte bDeviceProtocol;
    public byte bMaxPacketSize0;
    public ushort idVendor;
    public ushort idProduct;
    public ushort bcdDevice;
    public byte iManufacturer;
    public byte iProduct;
    public byte iSerialNumber;
    public byte bNumConfigurations;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct LibUsbEndpointDescriptor
{
    public byte bLength;
    public byte bDescriptorType;
    public byte bEndpointAddress;
    public byte bmAttributes;
    public ushort wMaxPacketSize;
    public byte bInterval;
    public byte bRefresh;
    public byte bSynchAddress;
    public byte* extra;
    public int extra_length;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct LibUsbInterfaceDescriptor
{
    public byte bLength;
    public byte bDescriptorType;
    public byte bInterfaceNumber;
    public byte bAlternateSetting;
    public byte bNumEndpoints;
    public byte bInterfaceClass;
    public byte bInterfaceSubClass;
    public byte bInterfaceProtocol;
    public byte iInterface;
    public LibUsbEndpointDescriptor* endpoint;
    public byte* extra;
    public int extra_length;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct LibUsbInterface
{
    public LibUsbInterfaceDescriptor* altsetting;
    public int num_altsetting;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct LibUsbConfigDescriptor
{
    public byte bLength;
    public byte bDescriptorType;
    public ushort wTotalLength;
    public byte bNumInterfaces;
    public byte bConfigurationValue;
    public byte iConfiguration;
    public byte bmAttributes;
    public byte MaxPower;
    public LibUsbInterface* @interface;
    public byte* extra;
    public int extra_length;
}

/// <summary>libusb_transfer (libusb.h), without the trailing iso packet descriptors bulk transfers do not use.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct LibUsbTransfer
{
    public nint dev_handle;
    public byte flags;
    public byte endpoint;
    public byte type;
    public uint timeout;
    public int status;
    public int length;
    public int actual_length;
    public delegate* unmanaged[Cdecl]<LibUsbTransfer*, void> callback;
    public void* user_data;
    public byte* buffer;
    public int num_iso_packets;
}

/// <summary>libusb_transfer_status.</summary>
public enum UsbTransferStatus
{
    Completed = 0,
    Error = 1,
    TimedOut = 2,
    Cancelled = 3,
    Stall = 4,
    NoDevice = 5,
    Overflow = 6,
}

[StructLayout(LayoutKind.Sequential)]
public struct TimeVal
{
    public long tv_sec;
    public long tv_usec;
}

public static unsafe partial class LibUsb
{
    public const byte TransferTypeBulk = 2;

    [LibraryImport(Lib, EntryPoint = "libusb_alloc_transfer")] public static partial LibUsbTransfer* AllocTransfer(int isoPackets);
    [LibraryImport(Lib, EntryPoint = "libusb_free_transfer")] public static partial void FreeTransfer(LibUsbTransfer* transfer);
    [LibraryImport(Lib, EntryPoint = "libusb_submit_transfer")] public static partial int SubmitTransfer(LibUsbTransfer* transfer);
    [LibraryImport(Lib, EntryPoint = "libusb_cancel_transfer")] public static partial int CancelTransfer(LibUsbTransfer* transfer);
    [LibraryImport(Lib, EntryPoint = "libusb_handle_events_timeout_completed")] public static partial int HandleEventsTimeoutCompleted(nint context, TimeVal* timeout, int* completed);

    private const string Lib = "libusb-1.0.so.0";

    [LibraryImport(Lib, EntryPoint = "libusb_init")] public static partial int Init(out nint context);
    [LibraryImport(Lib, EntryPoint = "libusb_exit")] public static partial void Exit(nint context);
    [LibraryImport(Lib, EntryPoint = "libusb_get_device_list")] public static partial nint GetDeviceList(nint context, out nint* list);
    [LibraryImport(Lib, EntryPoint = "libusb_free_device_list")] public static partial void FreeDeviceList(nint* list, int unrefDevices);
    [LibraryImport(Lib, EntryPoint = "libusb_get_device_descriptor")] public static partial int GetDeviceDescriptor(nint device, out LibUsbDeviceDescriptor descriptor);
    [LibraryImport(Lib, EntryPoint = "libusb_get_active_config_descriptor")] public static partial int GetActiveConfigDescriptor(nint device, out LibUsbConfigDescriptor* config);
    [LibraryImport(Lib, EntryPoint = "libusb_free_config_descriptor")] public static partial void FreeConfigDescriptor(LibUsbConfigDescriptor* config);
    [LibraryImport(Lib, EntryPoint = "libusb_get_bus_number")] public static partial byte GetBusNumber(nint device);
    [LibraryImport(Lib, EntryPoint = "libusb_get_device_address")] public static partial byte GetDeviceAddress(nint device);
    [LibraryImport(Lib, EntryPoint = "libusb_get_port_numbers")] public static partial int GetPortNumbers(nint device, byte* ports, int length);
    [LibraryImport(Lib, EntryPoint = "libusb_get_device_speed")] public static partial int GetDeviceSpeed(nint device);
    [LibraryImport(Lib, EntryPoint = "libusb_open")] public static partial int Open(nint device, out nint handle);
    [LibraryImport(Lib, EntryPoint = "libusb_close")] public static partial void Close(nint handle);
    [LibraryImport(Lib, EntryPoint = "libusb_claim_interface")] public static partial int ClaimInterface(nint handle, int interfaceNumber);
    [LibraryImport(Lib, EntryPoint = "libusb_release_interface")] public static partial int ReleaseInterface(nint handle, int interfaceNumber);
    [LibraryImport(Lib, EntryPoint = "libusb_set_auto_detach_kernel_driver")] public static partial int SetAutoDetachKernelDriver(nint handle, int enable);
    [LibraryImport(Lib, EntryPoint = "libusb_error_name")] private static partial nint ErrorNamePtr(int code);

    public static string ErrorName(int code) => Marshal.PtrToStringAnsi(ErrorNamePtr(code)) ?? $"LIBUSB_ERROR {code}";
}
