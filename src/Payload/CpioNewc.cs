using System.Text;

namespace RootfsExport.Payload;

/// <summary>
/// Writes "newc" cpio archives (magic 070701, thirteen 8-hex-digit fields), the format the kernel unpacks
/// for initramfs and accepts concatenated. Deterministic: the caller supplies inode numbers and mtimes.
/// </summary>
public sealed class CpioNewcWriter(Stream output)
{
    private long _written;
    private uint _nextIno = 1;

    public void Directory(string name, uint mode, long mtime) => Entry(name, 0x4000 | (mode & 0xfff), mtime, ReadOnlySpan<byte>.Empty, nlink: 2);
    public void File(string name, uint mode, long mtime, ReadOnlySpan<byte> data) => Entry(name, 0x8000 | (mode & 0xfff), mtime, data);
    public void Symlink(string name, string target, long mtime) => Entry(name, 0xA000 | 0x1ff, mtime, Encoding.UTF8.GetBytes(target));

    private void Entry(string name, uint mode, long mtime, ReadOnlySpan<byte> data, uint nlink = 1)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        var header = $"070701{_nextIno++:X8}{mode:X8}{0:X8}{0:X8}{nlink:X8}{(uint)mtime:X8}{data.Length:X8}{0:X8}{0:X8}{0:X8}{0:X8}{nameBytes.Length:X8}{0:X8}";
        WriteRaw(Encoding.ASCII.GetBytes(header));
        WriteRaw(nameBytes);
        Align();
        WriteRaw(data);
        Align();
    }

    /// <summary>The end marker; the archive is padded to 512 bytes like the kernel's gen_init_cpio.</summary>
    public void Finish()
    {
        _nextIno = 0;
        Entry("TRAILER!!!", 0, 0, ReadOnlySpan<byte>.Empty);
        while (_written % 512 != 0) WriteRaw([0]);
    }

    private void Align()
    {
        while (_written % 4 != 0) WriteRaw([0]);
    }

    private void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        output.Write(bytes);
        _written += bytes.Length;
    }
}
