using System.Text;
using RootfsExport.ExportTree;
using RootfsExport.PseudoDb;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// Applies one ipk to an export as opkg does offline: data files with their recorded owners, files of the old
/// version that the new one lacks removed (unless another package lists them), user-modified conffiles kept
/// with the new one as &lt;file&gt;-opkg, then info files and the status stanza. One files.db transaction.
/// </summary>
public static class PackageApplier
{
    public static string Apply(IpkFile ipk, ControlStanza? old, OpkgState opkg, ExportWriter writer, FilesDb db, bool autoInstalled)
    {
        var export = opkg.Export;
        var oldConffiles = OpkgState.Conffiles(old);
        var conffiles = new HashSet<string>(ipk.Conffiles, StringComparer.Ordinal);
        var newList = new List<string>();
        var keptConffiles = new List<string>();
        var conffileMd5 = new List<(string, string)>();
        var now = DateTimeOffset.UtcNow;
        db.InTransaction(() =>
        {
            ipk.ReadData(member =>
            {
                var path = ExportPath.Parse(member.Name, $"{Path.GetFileName(ipk.Path)}: data entry");
                if (path.IsRoot) return;
                var target = "/" + path.Value;
                var meta = new EntryMeta(member.Uid, member.Gid, member.Mode, 0, member.Mtime);
                switch (member.Type)
                {
                    case '5': writer.Directory(path, meta); break;
                    case '2': writer.Symlink(path, member.LinkName, meta); break;
                    case '1': writer.HardLink(path, ExportPath.Parse(member.LinkName, "hard link target")); break;
                    case '3' or '4':
                        writer.Special(path, member.Type == '3' ? EntryKind.CharDevice : EntryKind.BlockDevice,
                            meta with { Rdev = Posix.Native.Libc.MakeDev(member.DevMajor, member.DevMinor) });
                        break;
                    case '6': writer.Special(path, EntryKind.Fifo, meta); break;
                    case '0' or '7':
                        var onDisk = Path.Combine(export, path.Value);
                        if (conffiles.Contains(target) && File.Exists(onDisk) && oldConffiles.TryGetValue(target, out var recordedMd5)
                            && OpkgState.Md5(onDisk) != recordedMd5)
                        {
                            // the user changed it on the board: keep theirs, put ours beside it
                            writer.RegularFile(ExportPath.Parse(path.Value + "-opkg"), member.Data, meta);
                            keptConffiles.Add(target);
                            conffileMd5.Add((target, recordedMd5));
                        }
                        else
                        {
                            writer.RegularFile(path, member.Data, meta);
                            if (conffiles.Contains(target)) conffileMd5.Add((target, OpkgState.Md5(onDisk)));
                        }
                        break;
                    default:
                        throw new UserFacingException($"{Path.GetFileName(ipk.Path)}: data entry '{member.Name}' has tar type '{member.Type}'");
                }
                newList.Add(target);
            });

            // files the old version had and the new one does not: gone, unless another package owns them
            if (old != null)
            {
                var others = opkg.Status.Where(s => s.Package != ipk.Name).SelectMany(s => opkg.List(s.Package)).ToHashSet(StringComparer.Ordinal);
                var keep = newList.ToHashSet(StringComparer.Ordinal);
                foreach (var gone in opkg.List(ipk.Name).Where(p => !keep.Contains(p) && !others.Contains(p)).OrderByDescending(p => p.Length))
                {
                    var rel = ExportPath.ParseTargetAbsolute(gone, "obsolete file");
                    if (writer.TryStat(rel, out var st) && !Posix.StMode.IsDirectory(st.Mode)) writer.Remove(rel);
                }
            }

            var root = new EntryMeta(0, 0, 0x1a4, Mtime: now);
            WriteText(writer, opkg.InfoPath(ipk.Name, "list"), string.Concat(newList.Select(p => p + "\n")), root);
            WriteText(writer, opkg.InfoPath(ipk.Name, "control"), ipk.Control.ToString(), root);
            foreach (var (name, content) in ipk.ControlMembers)
            {
                if (name is "debian-binary") continue;
                bool script = name is "preinst" or "postinst" or "prerm" or "postrm";
                writer.RegularFile(ExportPath.Parse(opkg.InfoPath(ipk.Name, name)), new MemoryStream(content), root with { Permissions = script ? 0x1edu : 0x1a4u });
            }
            opkg.Replace(OpkgState.StatusStanza(ipk, ipk.HasPostinst ? "unpacked" : "installed", conffileMd5, now.ToUnixTimeSeconds(), autoInstalled));
            WriteText(writer, $"{opkg.Root}/status", opkg.FormatStatus(), root);
        });
        var notes = new List<string>();
        if (ipk.HasPostinst) notes.Add("postinst left for the board: installed as 'unpacked', run-postinsts/opkg configure finishes it");
        foreach (var c in keptConffiles) notes.Add($"kept your {c}, new one is {c}-opkg");
        return notes.Count > 0 ? " (" + string.Join("; ", notes) + ")" : "";
    }

    /// <summary>Removes a package as opkg remove does (scripts not run): its files unless another package lists them, its info files, its status stanza.</summary>
    public static void Remove(string package, OpkgState opkg, ExportWriter writer, FilesDb db)
    {
        db.InTransaction(() =>
        {
            var others = opkg.Status.Where(s => s.Package != package).SelectMany(s => opkg.List(s.Package)).ToHashSet(StringComparer.Ordinal);
            foreach (var path in opkg.List(package).Where(p => !others.Contains(p)).OrderByDescending(p => p.Length))
            {
                var rel = ExportPath.ParseTargetAbsolute(path, "package file");
                if (!writer.TryStat(rel, out var st)) continue;
                if (!Posix.StMode.IsDirectory(st.Mode)) writer.Remove(rel);
                else if (!Directory.EnumerateFileSystemEntries(Path.Combine(opkg.Export, rel.Value)).Any()) writer.Remove(rel);
            }
            var infoDir = Path.Combine(opkg.Export, opkg.Root, "info");
            if (Directory.Exists(infoDir))
                foreach (var f in Directory.EnumerateFiles(infoDir, package + ".*").Where(f => Path.GetFileName(f)[(package.Length + 1)..].IndexOf('.') < 0))
                    writer.Remove(ExportPath.Parse($"{opkg.Root}/info/{Path.GetFileName(f)}"));
            opkg.Status.RemoveAll(s => s.Package == package);
            WriteText(writer, $"{opkg.Root}/status", opkg.FormatStatus(), new EntryMeta(0, 0, 0x1a4, Mtime: DateTimeOffset.UtcNow));
        });
    }

    private static void WriteText(ExportWriter writer, string relative, string text, EntryMeta meta) =>
        writer.RegularFile(ExportPath.Parse(relative), new MemoryStream(Encoding.UTF8.GetBytes(text)), meta);
}
