using System.Security.Cryptography;
using System.Text.RegularExpressions;
using RootfsExport.ExportTree;
using RootfsExport.PseudoDb;

namespace RootfsExport.FeedWatcher;

/// <summary>What applying one package did, for the output.</summary>
public sealed record ApplyOutcome(bool LeftUnpacked, IReadOnlyList<string> Notes);

/// <summary>
/// Applies one package to an export as opkg/dpkg do offline, in one files.db transaction: data files with their
/// owners; files of the old version that the new one lacks removed unless another package owns them; conffiles
/// a user modified kept, the new one written beside them; info files and the status stanza. Maintainer scripts
/// are never run: a package with a postinst is recorded as unpacked for the board's run-postinsts.
/// </summary>
public static partial class PackageApplier
{
    /// <param name="oldList">paths the installed version owned (from the journal when rolling forward)</param>
    /// <param name="owners">maps rpm user/group names to ids</param>
    /// <param name="perms">PTXdist: ownership and device nodes from platform-*/state/&lt;pkg&gt;.perms, applied after the data</param>
    public static ApplyOutcome Apply(PackageFile pkg, ControlStanza? old, IReadOnlyCollection<string> oldList, PackageState state, ExportWriter writer,
        FilesDb db, bool autoInstalled, OwnerNames owners, PermsFile? perms)
    {
        var where = Path.GetFileName(pkg.Path);
        var oldConffiles = PackageState.Conffiles(old);
        var conffiles = new HashSet<string>(pkg.Conffiles, StringComparer.Ordinal);
        bool unpacked = pkg.HasPostinst;
        var newList = new List<string>();
        var recordedConffiles = new List<(string, string)>();
        var notes = new List<string>();
        var export = state.Export;
        var rpmFlags = RpmConfigFlags(pkg);
        // dpkg writes info/<pkg>.md5sums itself when a .deb ships none
        var md5sums = state.Format == PackageFormat.Deb && !pkg.ControlMembers.ContainsKey("md5sums") ? new List<(string Path, string Md5)>() : null;
        db.InTransaction(() =>
        {
            pkg.ReadData(member =>
            {
                var path = ExportPath.Parse(member.Name, $"{where}: data entry");
                if (path.IsRoot) return;
                var target = "/" + path.Value;
                var meta = new EntryMeta(member.Uid, member.Gid, member.Mode, 0, member.Mtime);
                switch (member.Type)
                {
                    case '5': writer.Directory(path, meta); break;
                    case '2': writer.Symlink(path, member.LinkName, meta); break;
                    case '1': writer.HardLink(path, ExportPath.Parse(member.LinkName, $"{where}: hard link target")); break;
                    case '3' or '4':
                        writer.Special(path, member.Type == '3' ? EntryKind.CharDevice : EntryKind.BlockDevice,
                            meta with { Rdev = Posix.Native.Libc.MakeDev(member.DevMajor, member.DevMinor) });
                        break;
                    case '6': writer.Special(path, EntryKind.Fifo, meta); break;
                    case '0' or '7' when conffiles.Contains(target):
                        Conffile(path, target, member.Data, meta);
                        break;
                    case '0' or '7' when md5sums != null:
                        using (var hashing = new HashingStream(member.Data))
                        {
                            writer.RegularFile(path, hashing, meta);
                            md5sums.Add((path.Value, hashing.Hex()));
                        }
                        break;
                    case '0' or '7': writer.RegularFile(path, member.Data, meta); break;
                    default:
                        throw new UserFacingException($"{where}: data entry '{member.Name}' has tar type '{member.Type}'");
                }
                newList.Add(target);
            }, owners.Resolve);
            if (perms != null)
            {
                perms.Apply(writer, where);
                foreach (var node in perms.Nodes) if (!newList.Contains(node)) newList.Add(node);
            }

            // files the old version had and the new one does not: gone, unless another package owns them
            var keep = newList.ToHashSet(StringComparer.Ordinal);
            var obsolete = oldList.Where(p => !keep.Contains(p) && p != "/" && p != "/.").ToList();
            if (obsolete.Count > 0)
            {
                var others = state.InstalledPackages().Where(s => s.Package != pkg.Name).SelectMany(s => state.List(s.Package)).ToHashSet(StringComparer.Ordinal);
                foreach (var gone in obsolete.Where(p => !others.Contains(p)).OrderByDescending(p => p.Length))
                {
                    var rel = ExportPath.ParseTargetAbsolute(gone, "obsolete file");
                    if (!writer.TryStat(rel, out var st)) { db.DeleteTree(writer.DbPath(rel)); continue; }
                    if (!Posix.StMode.IsDirectory(st.Mode)) writer.Remove(rel);
                    else if (!Directory.EnumerateFileSystemEntries(Path.Combine(export, rel.Value)).Any()) writer.Remove(rel); // dpkg/opkg leave non-empty dirs
                }
            }

            var now = DateTimeOffset.UtcNow;
            var root = new EntryMeta(0, 0, 0x1a4, Mtime: now);
            var written = new HashSet<string>(StringComparer.Ordinal);
            var records = state.Record(pkg, old, newList, recordedConffiles, unpacked, autoInstalled, now.ToUnixTimeSeconds());
            if (md5sums != null)
                records.Add(($"{state.Root}/info/{DpkgState.InfoName(pkg.Control)}.md5sums", System.Text.Encoding.UTF8.GetBytes(string.Concat(md5sums.Select(m => $"{m.Md5}  {m.Path}\n"))), false));
            foreach (var (rel, content, executable) in records)
            {
                writer.RegularFile(ExportPath.Parse(rel), new MemoryStream(content), root with { Permissions = executable ? 0x1edu : 0x1a4u });
                written.Add(rel);
            }
            // scripts or lists of the old version the new one does not have
            foreach (var stale in state.InfoFiles(pkg.Name).Where(f => !written.Contains(f)))
                writer.Remove(ExportPath.Parse(stale));
        });
        if (unpacked) notes.Add("postinst not run on the host: left 'install ok unpacked' for run-postinsts/" + (state.Format == PackageFormat.Deb ? "dpkg --configure -a" : state.Format == PackageFormat.Rpm ? "rerun on the board" : "opkg configure"));
        return new ApplyOutcome(unpacked, notes);

        void Conffile(ExportPath path, string target, Stream data, EntryMeta meta)
        {
            var content = new MemoryStream();
            data.CopyTo(content);
            var bytes = content.ToArray();
            string newMd5 = Convert.ToHexStringLower(MD5.HashData(bytes));
            md5sums?.Add((path.Value, newMd5));
            var onDisk = Path.Combine(export, path.Value);
            bool exists = File.Exists(onDisk);
            string? diskMd5 = exists ? PackageState.Md5(onDisk) : null;
            bool userModified = exists && oldConffiles.TryGetValue(target, out var recorded) && recorded != "newconffile" && diskMd5 != newMd5
                && !PackageState.Matches(onDisk, recorded);
            if (state.Format == PackageFormat.Deb && unpacked)
            {
                // dpkg unpacks every conffile as .dpkg-new and decides at configure time, on the board
                writer.RegularFile(ExportPath.Parse(path.Value + ".dpkg-new"), new MemoryStream(bytes), meta);
                recordedConffiles.Add((target, "newconffile"));
                return;
            }
            if (!userModified)
            {
                writer.RegularFile(path, new MemoryStream(bytes), meta);
                recordedConffiles.Add((target, newMd5));
                return;
            }
            if (state.Format == PackageFormat.Rpm && rpmFlags.TryGetValue(target, out var flags) && (flags & RpmHeader.RPMFILE_NOREPLACE) == 0)
            {
                // plain %config: the new file wins, the user's is saved
                using (var mine = File.OpenRead(onDisk))
                {
                    var saved = ExportPath.Parse(path.Value + ".rpmsave");
                    var row = db.GetByPath(writer.DbPath(path));
                    writer.RegularFile(saved, mine, meta with { Uid = row?.Uid ?? meta.Uid, Gid = row?.Gid ?? meta.Gid, Permissions = (row?.Mode ?? meta.Permissions) & 0xfff });
                }
                writer.RegularFile(path, new MemoryStream(bytes), meta);
                recordedConffiles.Add((target, newMd5));
                notes.Add($"saved your {target} as {target}.rpmsave");
                return;
            }
            // the user changed it on the board: keep theirs, put ours beside it
            var suffix = state.NewConffileSuffix;
            writer.RegularFile(ExportPath.Parse(path.Value + suffix), new MemoryStream(bytes), meta);
            recordedConffiles.Add((target, state.Format == PackageFormat.Ipk ? oldConffiles[target] : newMd5));
            notes.Add($"kept your {target}, new one is {target}{suffix}");
        }
    }

    /// <summary>
    /// Reads the whole package once before anything is written: every member name must stay inside the export,
    /// every type must be one we apply, hard links must point into the package, and PTXdist .perms records must
    /// name files the package (or the export) has. A package that fails here leaves the export untouched.
    /// </summary>
    public static void Preflight(PackageFile pkg, PermsFile? perms, string export, OwnerNames owners)
    {
        var where = Path.GetFileName(pkg.Path);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        pkg.ReadData(m =>
        {
            var path = ExportPath.Parse(m.Name, $"{where}: data entry");
            if (m.Type is not ('0' or '7' or '5' or '2' or '1' or '3' or '4' or '6'))
                throw new UserFacingException($"{where}: data entry '{m.Name}' has tar type '{m.Type}'");
            if (m.Type == '1' && !seen.Contains(ExportPath.Parse(m.LinkName, $"{where}: hard link target").Value))
                throw new UserFacingException($"{where}: hard link '{m.Name}' points to '{m.LinkName}', which comes later or not at all");
            seen.Add(path.Value);
            m.Data.CopyTo(Stream.Null);
        }, owners.Resolve);
        if (perms is null) return;
        foreach (var rec in perms.Records)
        {
            var rel = ExportPath.ParseTargetAbsolute(rec.Path, $"{Path.GetFileName(perms.Path)}: path");
            if (rec.Kind != PseudoDb.PermsKind.Node && !seen.Contains(rel.Value) && !Path.Exists(Path.Combine(export, rel.Value)))
                throw new UserFacingException($"{where}: {Path.GetFileName(perms.Path)} lists {rec.Path}, which the package does not contain");
        }
    }

    /// <summary>
    /// Removes a package as opkg remove / dpkg --purge do (scripts not run): its files unless another package
    /// lists them (directories only when empty), its info files, its status stanza. One transaction; a file
    /// already gone from disk (killed run) only loses its row, so a re-run converges.
    /// </summary>
    public static void Remove(string package, PackageState state, ExportWriter writer, FilesDb db)
    {
        db.InTransaction(() =>
        {
            var others = state.InstalledPackages().Where(s => s.Package != package).SelectMany(s => state.List(s.Package)).ToHashSet(StringComparer.Ordinal);
            foreach (var path in state.List(package).Where(p => !others.Contains(p) && p != "/" && p != "/.").OrderByDescending(p => p.Length))
            {
                var rel = ExportPath.ParseTargetAbsolute(path, "package file");
                if (!writer.TryStat(rel, out var st)) { db.DeleteTree(writer.DbPath(rel)); continue; }
                if (!Posix.StMode.IsDirectory(st.Mode)) writer.Remove(rel);
                else if (!Directory.EnumerateFileSystemEntries(Path.Combine(state.Export, rel.Value)).Any()) writer.Remove(rel);
            }
            var infoFiles = state.InfoFiles(package).ToList();
            var root = new EntryMeta(0, 0, 0x1a4, Mtime: DateTimeOffset.UtcNow);
            foreach (var (rel, content, executable) in state.Forget(package))
                writer.RegularFile(ExportPath.Parse(rel), new MemoryStream(content), root with { Permissions = executable ? 0x1edu : 0x1a4u });
            foreach (var f in infoFiles) if (writer.TryStat(ExportPath.Parse(f), out _)) writer.Remove(ExportPath.Parse(f));
        });
    }

    private static Dictionary<string, long> RpmConfigFlags(PackageFile pkg)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        if (pkg.Rpm is not { } h) return result;
        var paths = h.FilePaths();
        var flags = h.Integers(RpmHeader.FILEFLAGS);
        for (int i = 0; i < paths.Count && i < flags.Length; i++) result[paths[i]] = flags[i];
        return result;
    }

    [GeneratedRegex(@"^\..+\.rfe-\d+-[0-9a-f]{8}$")]
    private static partial Regex WriterTempName();

    /// <summary>
    /// After a kill: the export writer's temporary names (written, not yet renamed over their target) in the
    /// directories a package touches. They have no files.db row; the roll-forward writes the real files again.
    /// </summary>
    public static int RemoveStaleTemporaries(ExportWriter writer, string export, IEnumerable<string> targetPaths)
    {
        int removed = 0;
        foreach (var dir in targetPaths.Select(p => Path.GetDirectoryName(p.TrimEnd('/')) ?? "/").Distinct())
        {
            var onDisk = Path.Combine(export, dir.TrimStart('/'));
            if (!Directory.Exists(onDisk) || new DirectoryInfo(onDisk).LinkTarget != null) continue;
            foreach (var entry in Directory.EnumerateFileSystemEntries(onDisk))
            {
                var name = Path.GetFileName(entry);
                if (!WriterTempName().IsMatch(name)) continue;
                writer.Remove(ExportPath.ParseTargetAbsolute(dir.TrimEnd('/') + "/" + name, "temporary file"));
                removed++;
            }
        }
        return removed;
    }
}

/// <summary>Passes a member's data through while computing its md5.</summary>
internal sealed class HashingStream(Stream inner) : Compression.ReadOnlyStream
{
    private readonly IncrementalHash _md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);

    public override int Read(Span<byte> buffer)
    {
        int n = inner.Read(buffer);
        _md5.AppendData(buffer[..n]);
        return n;
    }

    public string Hex() => Convert.ToHexStringLower(_md5.GetHashAndReset());

    protected override void Dispose(bool disposing)
    {
        if (disposing) _md5.Dispose();
        base.Dispose(disposing);
    }
}
