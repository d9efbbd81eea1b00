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
        var run = new Application(pkg, old, state, writer, db, autoInstalled);
        db.InTransaction(() =>
        {
            run.Tree.Forget();
            pkg.ReadData(run.Member, owners.Resolve);
            if (perms != null)
            {
                perms.Apply(writer, run.Where);
                foreach (var node in perms.Nodes) if (!run.NewList.Contains(node)) run.NewList.Add(node);
            }
            RemoveObsolete(pkg.Name, oldList, run.NewList, state, writer, db, keepDirectories: state.Format == PackageFormat.Ipk);
            run.WriteRecords();
        });
        var notes = run.Conffiles.Notes;
        if (run.Unpacked && state.Format != PackageFormat.Deb) notes.Add("postinst not run on the host: left 'install ok unpacked' for run-postinsts/" + (state.Format == PackageFormat.Rpm ? "rerun on the board" : "opkg configure"));
        return new ApplyOutcome(run.Unpacked, notes);
    }

    /// <summary>One package being applied: its members written into the export, then the package manager's records.</summary>
    private sealed class Application
    {
        private readonly PackageFile pkg;
        private readonly ControlStanza? old;
        private readonly PackageState state;
        private readonly ExportWriter writer;
        private readonly FilesDb db;
        private readonly bool autoInstalled;
        private readonly HashSet<string> directories = new(StringComparer.Ordinal);
        // dpkg writes info/<pkg>.md5sums itself when a .deb ships none
        private readonly List<(string Path, string Md5)>? md5sums;
        public readonly string Where;
        public readonly TargetTree Tree;
        public readonly ConffileRules Conffiles;
        public readonly List<string> NewList = [];
        // dpkg: exactly what `dpkg --unpack` leaves (the board's dpkg --configure -a finishes every package, so none
        // is ever configured before a dependency); opkg and rpm: configured unless a postinst must run on the board
        public readonly bool Unpacked;

        public Application(PackageFile pkg, ControlStanza? old, PackageState state, ExportWriter writer, FilesDb db, bool autoInstalled)
        {
            (this.pkg, this.old, this.state, this.writer, this.db, this.autoInstalled) = (pkg, old, state, writer, db, autoInstalled);
            Where = Path.GetFileName(pkg.Path);
            Tree = state.Tree;
            Conffiles = new ConffileRules(pkg, old, state, writer, db);
            Unpacked = pkg.HasPostinst || state.Format == PackageFormat.Deb;
            md5sums = state.Format == PackageFormat.Deb && !pkg.ControlMembers.ContainsKey("md5sums") ? [] : null;
        }

        public void Member(TarMember member)
        {
            var path = ExportPath.Parse(member.Name, $"{Where}: data entry");
            if (path.IsRoot) return;
            WriteMember(member, path, "/" + path.Value);
            NewList.Add("/" + path.Value);
            if (member.Type == TarMemberType.Directory) directories.Add("/" + path.Value);
        }

        private void WriteMember(TarMember member, ExportPath path, string target)
        {
            // xattrs (file capabilities, ACLs) go into files.db as the image unpacker records them
            uint perms = member.Mode;
            var xattrs = MemberXattrs.Of(member, $"{Where}: data entry '{member.Name}'", ref perms);
            var meta = new EntryMeta(member.Uid, member.Gid, perms, 0, member.Mtime, xattrs);
            // directories of the package land where the target's symlinks lead (merged /usr: bin -> usr/bin)
            var real = Tree.Resolve(path.Value, followLast: false, $"{Where}: data entry");
            switch (member.Type)
            {
                case TarMemberType.Directory: Directory(path, real, meta); break;
                case TarMemberType.Symlink: writer.Symlink(real, member.LinkName, meta); Tree.Forget(); break;
                case TarMemberType.HardLink: writer.HardLink(real, Tree.Resolve(ExportPath.Parse(member.LinkName, $"{Where}: hard link target").Value, followLast: false)); break;
                case TarMemberType.CharDevice or TarMemberType.BlockDevice:
                    writer.Special(real, member.Type == TarMemberType.CharDevice ? EntryKind.CharDevice : EntryKind.BlockDevice,
                        meta with { Rdev = Posix.Native.Libc.MakeDev(member.DevMajor, member.DevMinor) });
                    break;
                case TarMemberType.Fifo: writer.Special(real, EntryKind.Fifo, meta); break;
                case TarMemberType.File or TarMemberType.Contiguous when Conffiles.IsConffile(target):
                    var md5 = Conffiles.Apply(real, target, member.Data, meta, Unpacked);
                    md5sums?.Add((path.Value, md5));
                    break;
                case TarMemberType.File or TarMemberType.Contiguous when md5sums != null:
                    using (var hashing = new HashingStream(member.Data))
                    {
                        writer.RegularFile(real, hashing, meta);
                        md5sums.Add((path.Value, hashing.Hex()));
                    }
                    break;
                case TarMemberType.File or TarMemberType.Contiguous: writer.RegularFile(real, member.Data, meta); break;
                default:
                    throw new UserFacingException($"{Where}: data entry '{member.Name}' has tar type '{member.Type.Flag()}'");
            }
        }

        // dpkg and opkg leave a directory that is already there as it is (owner, mode), a symlink to one included
        private void Directory(ExportPath path, ExportPath real, EntryMeta meta)
        {
            var followed = Tree.Resolve(path.Value, followLast: true);
            if (Tree.IsDirectory(followed) && db.GetByPath(writer.DbPath(followed)) != null) return;
            writer.Directory(real, meta);
            Tree.Forget();
        }

        public void WriteRecords()
        {
            var now = DateTimeOffset.UtcNow;
            var root = new EntryMeta(0, 0, 0x1a4, Mtime: now);
            var written = new HashSet<string>(StringComparer.Ordinal);
            // opkg's file_hash_set_file_owner skips the data.tar's directory entries (names ending in '/'), so its
            // info/<pkg>.list names no directory; dpkg's lists them
            var listed = state.Format == PackageFormat.Ipk ? NewList.Where(p => !directories.Contains(p)).ToList() : NewList;
            var records = state.Record(pkg, old, listed, Conffiles.Recorded, Unpacked, autoInstalled, now.ToUnixTimeSeconds());
            if (md5sums != null)
                records.Add(($"{state.InfoDir}/{DpkgState.InfoName(pkg.Control)}.md5sums", System.Text.Encoding.UTF8.GetBytes(string.Concat(md5sums.Select(m => $"{m.Md5}  {m.Path}\n"))), false));
            foreach (var (rel, content, executable) in records)
            {
                writer.RegularFile(ExportPath.Parse(rel), new MemoryStream(content), root with { Permissions = executable ? 0x1edu : 0x1a4u });
                written.Add(rel);
            }
            // scripts or lists of the old version the new one does not have
            foreach (var stale in state.InfoFiles(pkg.Name).Where(f => !written.Contains(f)))
                writer.Remove(ExportPath.Parse(stale));
        }
    }

    /// <summary>
    /// Files the old version had and the new one does not: gone, unless another package owns them or they are
    /// the same file as one of the new version under another name (merged /usr); directories only when empty.
    /// </summary>
    /// <param name="keepDirectories">opkg's remove_obsolesced_files skips directories; dpkg removes empty ones</param>
    private static void RemoveObsolete(string package, IReadOnlyCollection<string> oldList, List<string> newList, PackageState state, ExportWriter writer, FilesDb db,
        bool keepDirectories)
    {
        var keep = newList.ToHashSet(StringComparer.Ordinal);
        var obsolete = oldList.Where(p => !keep.Contains(p) && p != "/" && p != "/.").ToList();
        if (obsolete.Count == 0) return;
        var tree = state.Tree;
        var kept = newList.Select(p => tree.Resolve(p, followLast: false).Value).ToHashSet(StringComparer.Ordinal);
        kept.UnionWith(OtherPackagesFiles(package, state));
        RemovePaths(obsolete.Where(p => !keep.Contains(p)), kept, tree, writer, db, keepDirectories);
    }

    /// <summary>Where the files of every other installed package really are.</summary>
    private static IEnumerable<string> OtherPackagesFiles(string package, PackageState state) =>
        state.InstalledPackages().Where(s => s.Package != package).SelectMany(s => state.List(s.Package))
            .Distinct(StringComparer.Ordinal).Select(p => state.Tree.Resolve(p, followLast: false).Value);

    /// <summary>Removes package paths (longest first) whose real location is not in <paramref name="kept"/>.</summary>
    private static void RemovePaths(IEnumerable<string> paths, HashSet<string> kept, TargetTree tree, ExportWriter writer, FilesDb db, bool keepDirectories = false)
    {
        foreach (var gone in paths.OrderByDescending(p => p.Length))
        {
            var rel = tree.Resolve(gone, followLast: false, "package file");
            if (rel.IsRoot || kept.Contains(rel.Value)) continue;
            if (!writer.TryStat(rel, out var st)) { db.DeleteTree(writer.DbPath(rel)); continue; }
            // the target's own directory symlinks (merged /usr: lib -> usr/lib) stay, whoever listed the path
            if (Posix.StMode.IsSymlink(st.Mode) && tree.IsDirectory(tree.Resolve(rel.Value, followLast: true))) continue;
            // a directory goes only when empty, as dpkg/opkg rmdir it
            if (Posix.StMode.IsDirectory(st.Mode) && (keepDirectories || tree.Entries(rel).Count > 0)) continue;
            writer.Remove(rel);
            tree.Forget();
        }
    }

    /// <summary>
    /// Reads the whole package once before anything is written: every member name must stay inside the export,
    /// every type must be one we apply, hard links must point into the package, and PTXdist .perms records must
    /// name files the package (or the export) has. A package that fails here leaves the export untouched.
    /// </summary>
    public static void Preflight(PackageFile pkg, PermsFile? perms, TargetTree tree, OwnerNames owners)
    {
        var where = Path.GetFileName(pkg.Path);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        pkg.ReadData(m =>
        {
            var path = ExportPath.Parse(m.Name, $"{where}: data entry");
            if (m.Type is not (TarMemberType.File or TarMemberType.Contiguous or TarMemberType.Directory or TarMemberType.Symlink or TarMemberType.HardLink or TarMemberType.CharDevice or TarMemberType.BlockDevice or TarMemberType.Fifo))
                throw new UserFacingException($"{where}: data entry '{m.Name}' has tar type '{m.Type.Flag()}'");
            if (m.Type == TarMemberType.HardLink && !seen.Contains(ExportPath.Parse(m.LinkName, $"{where}: hard link target").Value))
                throw new UserFacingException($"{where}: hard link '{m.Name}' points to '{m.LinkName}', which comes later or not at all");
            seen.Add(path.Value);
            m.Data.CopyTo(Stream.Null);
        }, owners.Resolve);
        if (perms is null) return;
        foreach (var rec in perms.Records)
        {
            var rel = ExportPath.ParseTargetAbsolute(rec.Path, $"{Path.GetFileName(perms.Path)}: path");
            if (rec.Kind != PseudoDb.PermsKind.Node && !seen.Contains(rel.Value) && !tree.TryStat(tree.Resolve(rel.Value, followLast: false), out _))
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
            state.Tree.Forget();
            var kept = OtherPackagesFiles(package, state).ToHashSet(StringComparer.Ordinal);
            RemovePaths(state.List(package).Where(p => p != "/" && p != "/."), kept, state.Tree, writer, db);
            var infoFiles = state.InfoFiles(package).ToList();
            var root = new EntryMeta(0, 0, 0x1a4, Mtime: DateTimeOffset.UtcNow);
            foreach (var (rel, content, executable) in state.Forget(package))
                writer.RegularFile(ExportPath.Parse(rel), new MemoryStream(content), root with { Permissions = executable ? 0x1edu : 0x1a4u });
            foreach (var f in infoFiles) if (writer.TryStat(ExportPath.Parse(f), out _)) writer.Remove(ExportPath.Parse(f));
        });
    }

    [GeneratedRegex(@"^\..+\.rfe-\d+-[0-9a-f]{8}$")]
    private static partial Regex WriterTempName();

    /// <summary>
    /// After a kill: the export writer's temporary names (written, not yet renamed over their target) in the
    /// directories a package touches. They have no files.db row; the roll-forward writes the real files again.
    /// </summary>
    public static int RemoveStaleTemporaries(ExportWriter writer, TargetTree tree, IEnumerable<string> targetPaths)
    {
        int removed = 0;
        foreach (var dir in targetPaths.Select(p => Path.GetDirectoryName(p.TrimEnd('/')) ?? "/").Distinct())
        {
            var real = tree.Resolve(dir, followLast: true, "directory");
            foreach (var name in tree.Entries(real).Where(n => WriterTempName().IsMatch(n)))
            {
                writer.Remove(real.Child(name));
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
