using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BootSpec.Tests;

/// <summary>`--board` on cmdline and bootspec (issue 23): the board's kernel command line attaches its own layer, aname=&lt;export&gt;@&lt;board&gt;.</summary>
public class BoardCmdlineTests
{
    [Theory]
    [InlineData("--transport", "tcp", "--server", "192.168.7.1")]
    [InlineData("--transport", "usbg", "--udc", "ci_hdrc.0")]
    public void A_board_name_goes_into_the_9p_aname(params string[] options)
    {
        using var s = new ScratchDir();
        var line = Run.Tool(["cmdline", s.Path, .. options, "--board", "rock3a"], null).ShouldSucceed().Stdout.Trim();
        Assert.Contains($",aname={s.Path}@rock3a", line);
        Assert.DoesNotContain($"aname={s.Path} ", line + " ");
        Assert.Contains("rootfstype=9p", line);
    }

    [Theory]
    [InlineData("board", "--board does not apply to --transport nfs", "--transport", "nfs", "--server", "192.168.7.1", "--board", "rock3a")]
    [InlineData("board", "--board does not apply to --transport virtio", "--transport", "virtio", "--board", "rock3a")]
    [InlineData("board name", "board name 'a,b' must match", "--transport", "tcp", "--server", "192.168.7.1", "--board", "a,b")]
    [InlineData("board name", "board name 'x.pseudo_state' ends in .pseudo_state", "--transport", "tcp", "--server", "192.168.7.1", "--board", "x.pseudo_state")]
    public void A_board_where_it_cannot_apply_or_a_bad_name_is_refused(string _, string message, params string[] options)
    {
        using var s = new ScratchDir();
        var r = Run.Tool(["cmdline", s.Path, .. options], null);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Bootspec_writes_the_boards_aname_into_its_entry()
    {
        using var s = new ScratchDir();
        ExportFixture.Populate(s.Path);
        ExportFixture.HandToTool(s.Path);
        var r = Run.Tool(["bootspec", s.Path, "--transport", "tcp", "--server", "192.168.7.1", "--machine", "board", "--board", "rock3a"], null).ShouldSucceed();
        Assert.Contains($"aname={s.Path}@rock3a", r.Stdout);
        var entry = File.ReadAllText(Path.Combine(s.Path, "loader/entries/rootfs-export-board-6.6.1.conf"));
        Assert.Contains($"aname={s.Path}@rock3a", entry);
    }
}
