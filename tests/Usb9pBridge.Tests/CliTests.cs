using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>The usb commands on a machine without gadgets, run as an ordinary user as users do.</summary>
public class CliTests
{
    [Fact]
    public void Usb_list_without_gadgets_says_what_to_check_on_the_board()
    {
        var r = Run.Tool("usb", "list").ShouldSucceed();
        Assert.Contains("no usb9pfs gadget found", r.Stderr);
    }

    [Theory]
    [InlineData("--path", "1-x", "--path '1-x'")]
    [InlineData("--vid", "xyz", "--vid 'xyz'")]
    [InlineData("--pid", "123456", "--pid '123456'")]
    public void Bad_gadget_filters_are_named(string option, string value, string expected)
    {
        var r = Run.Tool("usb", "list", option, value);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
    }

    [Fact]
    public void Udev_rule_hint_matches_the_gadget_id()
    {
        Assert.Equal("SUBSYSTEM==\"usb\", ATTR{idVendor}==\"1d6b\", ATTR{idProduct}==\"0109\", MODE=\"0660\", GROUP=\"plugdev\", TAG+=\"uaccess\"",
            UsbAccessDeniedException.UdevRule(0x1d6b, 0x0109));
    }
}
