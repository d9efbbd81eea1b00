using System.Security.Cryptography;
using System.Text;
using RootfsExport.Posix;
using RootfsExport.PseudoDb;

namespace RootfsExport.BlockExport;

/// <summary>
/// One confined walk of an export (every step an *at() call, no symlink followed): what the image needs to
/// hold (entries, data blocks, the newest mtime) and a fingerprint of the export and its files.db, so an image
/// knows whether the export it was built from has changed since.
/// </summary>
public sealed record ExportSurvey(long Entries, long DataBlocks, long NewestMtime, IReadOnlyList<(string Path, long Mtime)> Mtimes, string Fingerprint)
{
    public const int BlockSize = 4096;

    public static ExportSurvey Take(string canonicalExport)
    {
        var state = PseudoState.ForExport(canonicalExport);
        if (!state.Exists)
            throw new UserFacingException($"'{canonicalExport}' has no pseudo database ({state.FilesDbPath}); create the export with 'rootfs-export update' or 'unpack' first");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var mtimes = new List<(string, long)>();
        long entries = 0, blocks = 0, newest = 0;
        using (var root = HostDirectory.Open(canonicalExport))
        {
            var self = root.StatSelf();
            newest = self.Mtime.Sec;
            Walk(root, "", hash, mtimes, ref entries, ref blocks, ref newest);
        }
        AddDatabase(state, canonicalExport, hash);
        return new ExportSurvey(entries, blocks, newest, mtimes, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    private static void Walk(HostDirectory dir, string prefix, IncrementalHash hash, List<(string, long)> mtimes, ref long entries, ref long blocks, ref long newest)
    {
        var names = dir.ReadEntries().Select(e => e.Name).Order(StringComparer.Ordinal).ToList();
        blocks += 1 + names.Sum(n => n.Length + 12L) / BlockSize; // the directory's own blocks
        foreach (var name in names)
        {
            var st = dir.Stat(name);
            var path = prefix + "/" + name;
            entries++;
            newest = Math.Max(newest, st.Mtime.Sec);
            mtimes.Add((path, st.Mtime.Sec));
            hash.AppendData(Encoding.UTF8.GetBytes($"{path}\0{st.Mode:x}\0{st.Size}\0{st.Ino}\0{st.Mtime.Sec}.{st.Mtime.Nsec}\0{st.Ctime.Sec}.{st.Ctime.Nsec}\n"));
            if (StMode.IsRegular(st.Mode) || (StMode.IsSymlink(st.Mode) && st.Size >= 60))
                blocks += ((long)st.Size + BlockSize - 1) / BlockSize;
            if (StMode.IsDirectory(st.Mode))
            {
                using var sub = dir.OpenDirectory(name);
                Walk(sub, path, hash, mtimes, ref entries, ref blocks, ref newest);
            }
        }
    }

    /// <summary>Owners, modes, device numbers and xattrs as files.db has them (what the image carries besides content).</summary>
    private static void AddDatabase(PseudoState state, string canonicalExport, IncrementalHash hash)
    {
        using var db = FilesDb.Open(state, create: false);
        foreach (var r in db.Under(canonicalExport).OrderBy(r => r.Path, StringComparer.Ordinal))
            hash.AppendData(Encoding.UTF8.GetBytes($"{r.Path}\0{r.Uid}\0{r.Gid}\0{r.Mode:x}\0{r.Rdev}\0{r.Ino}\n"));
        foreach (var x in db.AllXattrs())
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"{x.Dev}\0{x.Ino}\0{x.Name}\0"));
            hash.AppendData(x.Value);
        }
    }
}
