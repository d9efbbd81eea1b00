namespace RootfsExport.ExportTree;

/// <summary>Where the fields of a 512-byte tar header are (ustar layout, which GNU and PAX archives share).</summary>
internal static class TarHeader
{
    public const int BlockSize = 512;
    public const int TypeFlag = 156;
    public static readonly Range Name = 0..100, Mode = 100..108, Uid = 108..116, Gid = 116..124, Size = 124..136,
        Mtime = 136..148, Checksum = 148..156, LinkName = 157..257, Magic = 257..262, DevMajor = 329..337,
        DevMinor = 337..345, Prefix = 345..500;
}
