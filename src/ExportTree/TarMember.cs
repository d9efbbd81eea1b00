namespace RootfsExport.ExportTree;

/// <summary>One member of a tar archive, with its PAX records kept as raw bytes.</summary>
public sealed class TarMember
{
    public required string Name { get; init; }
    public required string LinkName { get; init; }
    /// <summary>The typeflag (never OldFile: that is resolved to File or Directory).</summary>
    public required TarMemberType Type { get; init; }
    /// <summary>Permission bits including setuid/setgid/sticky.</summary>
    public required uint Mode { get; init; }
    public required uint Uid { get; init; }
    public required uint Gid { get; init; }
    public required long Size { get; init; }
    public required DateTimeOffset Mtime { get; init; }
    public required uint DevMajor { get; init; }
    public required uint DevMinor { get; init; }
    /// <summary>PAX records of this member (SCHILY.xattr.*, SCHILY.acl.*, ...), values as raw bytes.</summary>
    public required IReadOnlyDictionary<string, byte[]> Pax { get; init; }
    public required Stream Data { get; init; }
}
