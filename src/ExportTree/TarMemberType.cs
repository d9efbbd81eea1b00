namespace RootfsExport.ExportTree;

/// <summary>The typeflag of a tar header (POSIX ustar, plus the GNU and PAX extension types).</summary>
public enum TarMemberType : byte
{
    /// <summary>Pre-POSIX archives: a file, or a directory when the name ends with '/'.</summary>
    OldFile = 0,
    File = (byte)'0',
    HardLink = (byte)'1',
    Symlink = (byte)'2',
    CharDevice = (byte)'3',
    BlockDevice = (byte)'4',
    Directory = (byte)'5',
    Fifo = (byte)'6',
    /// <summary>Contiguous file: an ordinary file everywhere that matters.</summary>
    Contiguous = (byte)'7',
    PaxExtended = (byte)'x',
    PaxGlobal = (byte)'g',
    GnuLongName = (byte)'L',
    GnuLongLink = (byte)'K',
    GnuSparse = (byte)'S',
}

public static class TarMemberTypeExtensions
{
    public static bool IsFile(this TarMemberType t) => t is TarMemberType.File or TarMemberType.Contiguous;
    public static bool IsDevice(this TarMemberType t) => t is TarMemberType.CharDevice or TarMemberType.BlockDevice;

    /// <summary>The typeflag as tar shows it, for messages.</summary>
    public static char Flag(this TarMemberType t) => (char)t;
}
