using System.Formats.Tar;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree.Build;

/// <summary>
/// PTXdist's nfsroot data as an image: platform-X/root holds the files (owned by the builder, no device
/// nodes) and platform-X/state/*.perms their owners, modes and device nodes; `ptxdist nfsroot` serves the
/// two together under fakeroot. images/root.tgz exists only with PTXCONF_IMAGE_ROOT_TGZ, so this is the
/// image a BSP always has. It is written as one tar file that update unpacks like any image, and rewritten
/// only when something under root/ or a .perms file changed, so an unchanged BSP stays "image up to date".
/// </summary>
public static class PtxdistNfsroot
{
    public static string RootDir(string platformDir) => Path.Combine(platformDir, "root");

    public static bool Exists(string platformDir) =>
        Directory.Exists(RootDir(platformDir)) && Directory.Exists(Path.Combine(platformDir, "state"))
        && Directory.EnumerateFiles(Path.Combine(platformDir, "state"), "*.perms").Any();

    /// <summary>The newest change under root/ (a deletion shows in its directory's mtime) and in the .perms files.</summary>
    public static DateTime LastChange(string platformDir)
    {
        var newest = Directory.GetLastWriteTimeUtc(RootDir(platformDir));
        foreach (var info in Walk(new DirectoryInfo(RootDir(platformDir))))
            if (info.LastWriteTimeUtc > newest) newest = info.LastWriteTimeUtc;
        foreach (var perms in Directory.EnumerateFiles(Path.Combine(platformDir, "state"), "*.perms"))
            newest = new[] { newest, File.GetLastWriteTimeUtc(perms) }.Max();
        return newest;
    }

    /// <summary>The tar file for the current data in cacheDir, written when missing or older than the data.</summary>
    public static string Tarball(string platformDir, string cacheDir)
    {
        var tar = Path.Combine(cacheDir, Path.GetFileName(platformDir) + "-nfsroot.tar");
        if (File.Exists(tar) && File.GetLastWriteTimeUtc(tar) > LastChange(platformDir)) return tar;
        Directory.CreateDirectory(cacheDir);
        var tmp = tar + ".tmp";
        using (var stream = File.Create(tmp))
            Write(platformDir, stream);
        File.Move(tmp, tar, overwrite: true);
        return tar;
    }

    /// <summary>Every .perms record by target path; a later file (by name) wins, as PTXdist applies them in order.</summary>
    public static Dictionary<string, PermsRecord> ReadPerms(string platformDir)
    {
        var result = new Dictionary<string, PermsRecord>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(platformDir, "state"), "*.perms").Order(StringComparer.Ordinal))
            using (var reader = new StreamReader(file))
                foreach (var record in PtxdistPerms.Parse(reader, file))
                    result[record.Path.Length > 1 ? record.Path.TrimEnd('/') : record.Path] = record;
        return result;
    }

    private static void Write(string platformDir, Stream output)
    {
        var perms = ReadPerms(platformDir);
        var root = new DirectoryInfo(RootDir(platformDir));
        using var writer = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true);
        writer.WriteEntry(Entry(root, "/", ".", perms));
        foreach (var info in Walk(root))
        {
            var target = "/" + Path.GetRelativePath(root.FullName, info.FullName);
            if (perms.TryGetValue(target, out var p) && p.Kind == PermsKind.Node) continue; // written as the node below
            var entry = Entry(info, target, "." + target, perms);
            if (entry.EntryType == TarEntryType.RegularFile) entry.DataStream = File.OpenRead(info.FullName);
            writer.WriteEntry(entry);
            entry.DataStream?.Dispose();
        }
        // device nodes and FIFOs exist only in the .perms files: the builder cannot mknod
        foreach (var node in perms.Values.Where(r => r.Kind == PermsKind.Node).OrderBy(r => r.Path, StringComparer.Ordinal))
        {
            var type = node.NodeType switch { 'c' => TarEntryType.CharacterDevice, 'b' => TarEntryType.BlockDevice, _ => TarEntryType.Fifo };
            writer.WriteEntry(new PaxTarEntry(type, "." + node.Path)
            {
                Mode = (UnixFileMode)(node.Mode & 0xfff), Uid = (int)node.Uid, Gid = (int)node.Gid,
                DeviceMajor = (int)node.Major, DeviceMinor = (int)node.Minor,
            });
        }
    }

    /// <summary>A directory, file or symlink with the owner and mode of its .perms record, else 0:0 (the
    /// builder is root under fakeroot) and the mode it has on disk.</summary>
    private static PaxTarEntry Entry(FileSystemInfo info, string target, string name, Dictionary<string, PermsRecord> perms)
    {
        var type = info.LinkTarget != null ? TarEntryType.SymbolicLink
            : info is DirectoryInfo ? TarEntryType.Directory : TarEntryType.RegularFile;
        var entry = new PaxTarEntry(type, type == TarEntryType.Directory && name != "." ? name + "/" : name)
        {
            Mode = type == TarEntryType.SymbolicLink ? (UnixFileMode)0b111_111_111 : info.UnixFileMode,
            ModificationTime = info.LastWriteTimeUtc,
        };
        if (type == TarEntryType.SymbolicLink) entry.LinkName = info.LinkTarget!;
        if (type != TarEntryType.SymbolicLink && perms.TryGetValue(target, out var p))
        {
            entry.Mode = (UnixFileMode)(p.Mode & 0xfff);
            entry.Uid = (int)p.Uid;
            entry.Gid = (int)p.Gid;
        }
        return entry;
    }

    /// <summary>Everything below dir, parents first; symlinks are entries, never followed.</summary>
    private static IEnumerable<FileSystemInfo> Walk(DirectoryInfo dir)
    {
        foreach (var info in dir.EnumerateFileSystemInfos().OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            yield return info;
            if (info is DirectoryInfo sub && sub.LinkTarget == null)
                foreach (var inner in Walk(sub)) yield return inner;
        }
    }
}
