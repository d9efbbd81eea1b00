using System.Net;
using Xunit;

namespace RootfsExport.BootSpec.Tests;

public class CmdlineTests
{
    private static readonly IPAddress Server = IPAddress.Parse("192.168.7.1");

    [Fact]
    public void Nfs_line_has_both_ports_nolock_dhcp_and_rw()
    {
        var line = KernelCmdline.For(new NfsEndpoint(Server, "/srv/export"), new CmdlineOptions(Console: "ttyAMA0,115200"));
        Assert.Equal("console=ttyAMA0,115200 root=/dev/nfs nfsroot=192.168.7.1:/srv/export,v3,tcp,port=3049,mountport=3049,nolock ip=dhcp rw", line);
    }

    [Fact]
    public void NineP_tcp_mount_options_are_shared_by_rootflags_and_mount()
    {
        var t = new NinePTcpEndpoint(IPAddress.Parse("10.0.2.100"), "/srv/export");
        const string options = "trans=tcp,port=5640,version=9p2000.L,msize=524288,cache=mmap,uname=root,access=user,dfltuid=0,dfltgid=0,aname=/srv/export";
        Assert.Equal(options, t.MountOptions);
        Assert.Equal($"mount -t 9p -o {options} 10.0.2.100 /mnt/t0", t.MountCommand("/mnt/t0"));
        Assert.Equal($"root=10.0.2.100 rootfstype=9p rootflags={options} ip=dhcp rw", KernelCmdline.For(t));
    }

    [Fact]
    public void Usbg_line_follows_the_kernel_docs_and_only_names_msize_when_asked()
    {
        var u = new UsbgEndpoint("ci_hdrc.0", "/srv/export");
        Assert.Equal("root=ci_hdrc.0 rootfstype=9p rootflags=trans=usbg,cache=mmap,uname=root,access=user,dfltuid=0,dfltgid=0,aname=/srv/export rw", KernelCmdline.For(u));
        Assert.EndsWith(",aname=/srv/export,msize=8192", (u with { Msize = 8192 }).MountOptions);
        // a raised buflen is used as msize and written by the gadget set-up before binding
        var big = u with { Buflen = 65536 };
        Assert.EndsWith(",msize=65536", big.MountOptions);
        Assert.Contains("echo 65536 > functions/usb9pfs.ci_hdrc.0/buflen", UsbGadgetSetup.Script(big));
        Assert.DoesNotContain("buflen", UsbGadgetSetup.Script(u));
    }

    [Fact]
    public void Virtio_line_needs_no_network()
    {
        Assert.Equal("root=rootfs rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=524288,cache=mmap rw", KernelCmdline.For(new VirtioEndpoint()));
    }

    [Fact]
    public void Appendroot_leaves_the_root_to_barebox()
    {
        var line = KernelCmdline.WithoutRoot(new NfsEndpoint(Server, "/srv/export"), new CmdlineOptions("ttyS0,115200", Append: "quiet"));
        Assert.Equal("console=ttyS0,115200 rw quiet", line);
    }

    [Fact]
    public void Barebox_line_uses_the_double_slash_absolute_path()
    {
        Assert.Equal("boot nfs://192.168.7.1:3049//srv/export", BareboxLine.For(new NfsEndpoint(Server, "/srv/export")));
        Assert.Null(BareboxLine.For(new VirtioEndpoint()));
    }

    [Fact]
    public void Gadget_setup_follows_rsinit()
    {
        var s = UsbGadgetSetup.Script(new UsbgEndpoint("dummy_udc.0", "/srv/e"));
        var lines = s.Split('\n');
        Assert.Contains("echo 0x1d6b > idVendor", lines);
        Assert.Contains("echo 0x0109 > idProduct", lines);
        Assert.Contains("mkdir functions/usb9pfs.dummy_udc.0", lines);
        Assert.Contains("ln -s functions/usb9pfs.dummy_udc.0 configs/c.1/usb9pfs.dummy_udc.0", lines);
        Assert.True(Array.IndexOf(lines, "echo dummy_udc.0 > UDC") > Array.IndexOf(lines, "ln -s functions/usb9pfs.dummy_udc.0 configs/c.1/usb9pfs.dummy_udc.0"));
        Assert.StartsWith("mount -t 9p -o trans=usbg,", lines[^2]);
    }

    public static TheoryData<string, Action> BadInputs => new()
    {
        { "server", () => new NfsEndpoint(IPAddress.Parse("0.0.0.0"), "/e").Validate() },
        { "server", () => new NfsEndpoint(IPAddress.Parse("::1"), "/e").Validate() },
        { "server", () => new NinePTcpEndpoint(IPAddress.Parse("224.0.0.1"), "/e").Validate() },
        { "server", () => Check.ParseServer("300.1.1.1") },
        { "server", () => Check.ParseServer("1.2.3") },
        { "port", () => new NfsEndpoint(Server, "/e", 0).Validate() },
        { "port", () => new NinePTcpEndpoint(Server, "/e", 70000).Validate() },
        { "export path", () => new NfsEndpoint(Server, "relative/export").Validate() },
        { "export path", () => new NfsEndpoint(Server, "/with space").Validate() },
        { "export path", () => new NfsEndpoint(Server, "/a,b").Validate() },
        { "export path", () => new NfsEndpoint(Server, "/a/../b").Validate() },
        { "aname", () => new NinePTcpEndpoint(Server, "export").Validate() },
        { "aname", () => new UsbgEndpoint("ci_hdrc.0", "/e/").Validate() },
        { "tag", () => new VirtioEndpoint("my tag").Validate() },
        { "tag", () => new VirtioEndpoint("").Validate() },
        { "tag", () => new VirtioEndpoint(new string('t', 32)).Validate() },
        { "udc", () => new UsbgEndpoint("ci/hdrc", "/e").Validate() },
        { "msize", () => new UsbgEndpoint("ci_hdrc.0", "/e", 65536).Validate() },
        { "msize", () => new VirtioEndpoint(Msize: 1000).Validate() },
        { "cache", () => new VirtioEndpoint(Cache: "fast").Validate() },
        { "access", () => new NinePTcpEndpoint(Server, "/e", Access: "everyone").Validate() },
        { "ip", () => IpConfig.Validate("dhcpp") },
        { "ip", () => IpConfig.Validate("192.168.7.2:192.168.7.300::255.255.255.0::eth0:off") },
        { "ip", () => IpConfig.Validate("::::::dhcp6") },
        { "ip", () => IpConfig.Validate("dhcp rw") },
        { "console", () => Check.Console("ttyS0 115200") },
        { "machine-id", () => Check.MachineId("4098B3F648D74C13B1F04CCFBA7798E8") },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_names_the_field(string field, Action act)
    {
        var e = Assert.Throws<BootSpecException>(act);
        Assert.Equal(field, e.Field);
        Assert.StartsWith(field + ": ", e.Message);
        Assert.IsAssignableFrom<UserFacingException>(e);
    }

    [Theory]
    [InlineData("dhcp")]
    [InlineData("off")]
    [InlineData(":::::eth0:dhcp")]
    [InlineData("192.168.7.2:192.168.7.1:192.168.7.1:255.255.255.0:board:eth0:off")]
    [InlineData("192.168.7.2:192.168.7.1:192.168.7.1:255.255.255.0:board:eth0:off:1.1.1.1:8.8.8.8:192.168.7.1")]
    public void Good_ip_values_pass(string ip) => IpConfig.Validate(ip);

    [Fact]
    public void Request_rejects_options_of_another_transport_and_missing_required_ones()
    {
        Assert.Equal("tag", Assert.Throws<BootSpecException>(() => new BootSpecRequest { Transport = "nfs", Server = "1.2.3.4", Tag = "x" }.Endpoint("/e")).Field);
        Assert.Equal("server", Assert.Throws<BootSpecException>(() => new BootSpecRequest { Transport = "tcp" }.Endpoint("/e")).Field);
        Assert.Equal("udc", Assert.Throws<BootSpecException>(() => new BootSpecRequest { Transport = "usbg" }.Endpoint("/e")).Field);
        Assert.Equal("transport", Assert.Throws<BootSpecException>(() => new BootSpecRequest { Transport = "iscsi" }.Endpoint("/e")).Field);
    }
}
