using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

public sealed record TransferReport(int Applied, IReadOnlyList<string> Skipped);

/// <summary>Moves ownership between an export's files.db and fakeroot save files / PTXdist .perms files.</summary>
public static class OwnershipTransfer
{
    public static string ExportFakeroot(string exportDir)
    {
        using var handle = ExportHandle.OpenForReading(exportDir);
        var records = handle.Db.Under(handle.Path)
            .GroupBy(r => (r.Dev, r.Ino))
            .Select(g => { var r = g.First(); return new FakerootRecord(r.Dev, r.Ino, r.Mode, r.Uid, r.Gid, (uint)g.Count(), r.Rdev); })
            .OrderBy(r => r.Dev).ThenBy(r => (ulong)r.Ino);
        return FakerootSaveFile.Format(records);
    }

    public static string ExportPerms(string exportDir)
    {
        using var handle = ExportHandle.OpenForReading(exportDir);
        var export = handle.Path;
        var records = new List<PermsRecord>();
        foreach (var r in handle.Db.Under(export))
        {
            var target = r.Path == export ? "/" : r.Path[export.Length..];
            switch (r.Type)
            {
                case FileRow.S_IFDIR: records.Add(new PermsRecord(PermsKind.Directory, target, r.Uid, r.Gid, r.Permissions)); break;
                case FileRow.S_IFREG: records.Add(new PermsRecord(PermsKind.File, target, r.Uid, r.Gid, r.Permissions)); break;
                case FileRow.S_IFCHR or FileRow.S_IFBLK or FileRow.S_IFIFO:
                    records.Add(new PermsRecord(PermsKind.Node, target, r.Uid, r.Gid, r.Permissions,
                        r.Type == FileRow.S_IFCHR ? 'c' : r.Type == FileRow.S_IFBLK ? 'b' : 'p',
                        r.Type == FileRow.S_IFIFO ? 0 : Libc.Major(r.Rdev), r.Type == FileRow.S_IFIFO ? 0 : Libc.Minor(r.Rdev)));
                    break;
            }
        }
        return PtxdistPerms.Format(records);
    }

    /// <summary>Applies a fakeroot save file: every path on disk with a listed dev/ino gets that ownership.</summary>
    public static TransferReport ImportFakeroot(string exportDir, string saveFile)
    {
        var records = Read(saveFile, FakerootSaveFile.Parse);
        using var export = ExportHandle.OpenForWriting(exportDir);
        var byInode = ExportChecker.ScanDisk(export).ToLookup(e => (e.Value.Dev(), e.Value.InoSigned()));
        var skipped = new List<string>();
        int applied = 0;
        export.InTransaction(db =>
        {
            foreach (var rec in records)
            {
                var paths = byInode[(rec.Dev, rec.Ino)].ToList();
                if (paths.Count == 0) { skipped.Add($"dev={rec.Dev:x},ino={rec.Ino}: no such inode in the export"); continue; }
                foreach (var (rel, st) in paths)
                {
                    uint mode = rec.HasType ? rec.Mode : (st.Mode & Libc.S_IFMT) | (rec.Mode & 0xfff);
                    db.PutLink(new FileRow(export.DbPath(rel), st.Dev(), st.InoSigned(), rec.Uid, rec.Gid, mode, rec.Rdev));
                    applied++;
                }
            }
        });
        return new TransferReport(applied, skipped);
    }

    /// <summary>Applies PTXdist .perms lines; device nodes missing on disk are created as placeholders.</summary>
    public static TransferReport ImportPerms(string exportDir, string permsFile)
    {
        var records = Read(permsFile, PtxdistPerms.Parse);
        using var export = ExportHandle.OpenForWriting(exportDir);
        var skipped = new List<string>();
        int applied = 0;
        using var writer = new ExportWriter(export);
        export.InTransaction(db =>
        {
            foreach (var rec in records)
            {
                var path = ExportPath.ParseTargetAbsolute(rec.Path, $"{Path.GetFileName(permsFile)}: path");
                if (rec.Kind == PermsKind.Node)
                {
                    var kind = rec.NodeType switch { 'c' => EntryKind.CharDevice, 'b' => EntryKind.BlockDevice, _ => EntryKind.Fifo };
                    writer.Special(path, kind, new EntryMeta(rec.Uid, rec.Gid, rec.Mode, Libc.MakeDev(rec.Major, rec.Minor)));
                    applied++;
                    continue;
                }
                if (!writer.TryStat(path, out var st)) { skipped.Add($"{rec.Path}: not in the export"); continue; }
                var dbPath = writer.DbPath(path);
                var row = db.GetByPath(dbPath);
                uint type = st.Mode & Libc.S_IFMT;
                if (row is null || row.Dev != st.Dev() || row.Ino != st.InoSigned())
                    db.PutLink(new FileRow(dbPath, st.Dev(), st.InoSigned(), rec.Uid, rec.Gid, type | (rec.Mode & 0xfff), 0));
                else db.UpdateOwnership(row.Dev, row.Ino, rec.Uid, rec.Gid, rec.Mode);
                applied++;
            }
        });
        return new TransferReport(applied, skipped);
    }

    private static List<T> Read<T>(string file, Func<TextReader, string, List<T>> parse)
    {
        if (!File.Exists(file)) throw new UserFacingException($"'{file}' does not exist");
        using var reader = new StreamReader(file);
        return parse(reader, Path.GetFileName(file));
    }
}
