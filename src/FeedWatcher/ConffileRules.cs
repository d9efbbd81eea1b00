using System.Security.Cryptography;
using RootfsExport.ExportTree;
using RootfsExport.PseudoDb;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// How one package's conffiles land, as dpkg, opkg and rpm decide it, and which hash the status records.
/// The file on the target is read through the confined tree (a symlink there is followed inside the export
/// only).
/// </summary>
internal sealed class ConffileRules(PackageFile pkg, ControlStanza? old, PackageState state, ExportWriter writer, FilesDb db)
{
    private readonly HashSet<string> _conffiles = new(pkg.Conffiles, StringComparer.Ordinal);
    private readonly Dictionary<string, string> _old = PackageState.Conffiles(old);
    private readonly Dictionary<string, long> _rpmFlags = RpmConfigFlags(pkg);

    /// <summary>(path, hash) for the status Conffiles field, in package order.</summary>
    public List<(string Path, string Hash)> Recorded { get; } = new();
    public List<string> Notes { get; } = new();

    public bool IsConffile(string target) => _conffiles.Contains(target);

    /// <summary>Writes (or not) one conffile; returns the md5 of the packaged content.</summary>
    public string Apply(ExportPath real, string target, Stream data, EntryMeta meta, bool unpacked)
    {
        var content = new MemoryStream();
        data.CopyTo(content);
        var bytes = content.ToArray();
        var newMd5 = Convert.ToHexStringLower(MD5.HashData(bytes));
        _old.TryGetValue(target, out var oldHash);
        if (state.Format == PackageFormat.Deb && unpacked)
        {
            // dpkg --unpack puts every conffile beside the old one as .dpkg-new and decides at --configure; the
            // status keeps the hash the old version recorded ("newconffile" only for a file no package had)
            writer.RegularFile(Beside(real, ".dpkg-new"), new MemoryStream(bytes), meta);
            Recorded.Add((target, oldHash ?? "newconffile"));
            return newMd5;
        }
        var disk = state.Tree.ReadAllBytes(state.Tree.Resolve(real.Value, followLast: true, "conffile"));
        if (state.Format == PackageFormat.Ipk) return ApplyOpkg(real, target, bytes, newMd5, oldHash, disk, meta);
        bool userModified = disk != null && oldHash is not null and not "newconffile" && !PackageState.Matches(disk, oldHash)
            && Convert.ToHexStringLower(MD5.HashData(disk)) != newMd5;
        if (!userModified)
        {
            writer.RegularFile(real, new MemoryStream(bytes), meta);
            Recorded.Add((target, newMd5));
        }
        else if (PackageState.Matches(bytes, oldHash!))
            Recorded.Add((target, oldHash!)); // edited, but the package did not change it: nothing to offer
        else if (state.Format == PackageFormat.Rpm && _rpmFlags.TryGetValue(target, out var flags) && (flags & RpmHeader.RPMFILE_NOREPLACE) == 0)
            ReplaceSavingTheUsers(real, target, disk!, bytes, newMd5, meta);
        else
        {
            // the user changed it on the board: keep theirs, put ours beside it
            var suffix = state.NewConffileSuffix;
            writer.RegularFile(Beside(real, suffix), new MemoryStream(bytes), meta);
            Recorded.Add((target, newMd5));
            Notes.Add($"kept your {target}, new one is {target}{suffix}");
        }
        return newMd5;
    }

    /// <summary>
    /// opkg (opkg_install.c): backup_modified_conffiles saves the file on the target when it differs from the hash
    /// the old version recorded, or when the path was not a conffile of the old version at all; the new file is
    /// unpacked; resolve_conffiles then moves it to &lt;file&gt;-opkg and puts the saved one back whenever the two
    /// differ — also when the package did not change the file. The status records the new file's hash.
    /// </summary>
    private string ApplyOpkg(ExportPath real, string target, byte[] bytes, string newMd5, string? oldHash, byte[]? disk, EntryMeta meta)
    {
        bool backedUp = disk != null && (oldHash is null || !PackageState.Matches(disk, oldHash));
        if (backedUp && Convert.ToHexStringLower(MD5.HashData(disk!)) != newMd5)
        {
            writer.RegularFile(Beside(real, state.NewConffileSuffix), new MemoryStream(bytes), meta);
            Notes.Add($"kept your {target}, new one is {target}{state.NewConffileSuffix}");
        }
        else writer.RegularFile(real, new MemoryStream(bytes), meta);
        Recorded.Add((target, newMd5));
        return newMd5;
    }

    /// <summary>rpm's plain %config: the new file wins, the user's is saved as .rpmsave with its owner and mode.</summary>
    private void ReplaceSavingTheUsers(ExportPath real, string target, byte[] mine, byte[] bytes, string newMd5, EntryMeta meta)
    {
        var row = db.GetByPath(writer.DbPath(real));
        writer.RegularFile(Beside(real, ".rpmsave"), new MemoryStream(mine),
            meta with { Uid = row?.Uid ?? meta.Uid, Gid = row?.Gid ?? meta.Gid, Permissions = (row?.Mode ?? meta.Permissions) & 0xfff });
        writer.RegularFile(real, new MemoryStream(bytes), meta);
        Recorded.Add((target, newMd5));
        Notes.Add($"saved your {target} as {target}.rpmsave");
    }

    private static ExportPath Beside(ExportPath real, string suffix) => ExportPath.Parse(real.Value + suffix);

    private static Dictionary<string, long> RpmConfigFlags(PackageFile pkg)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        if (pkg.Rpm is not { } h) return result;
        var paths = h.FilePaths();
        var flags = h.Integers(RpmHeader.FILEFLAGS);
        for (int i = 0; i < paths.Count && i < flags.Length; i++) result[paths[i]] = flags[i];
        return result;
    }
}
