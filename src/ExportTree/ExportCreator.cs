using RootfsExport.Compression;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

public sealed record UnpackResult(string Export, string StateDir, long Entries, long ArchiveBytes, CompressionKind Compression, TimeSpan Elapsed, bool Replaced);

/// <summary>
/// Creates or replaces an export from an image tarball, all or nothing: the new tree and its files.db are
/// built beside the target (rows already carry the final paths), then moved into place. Replacing swaps
/// old and new with renameat2(RENAME_EXCHANGE), tree first, then state; an interrupted swap is finished by
/// the next run (<see cref="RecoverInterrupted"/>), which tells which half is current by the root's inode.
/// </summary>
public static class ExportCreator
{
    public static UnpackResult Unpack(string tarball, string exportDir, bool replace, IUnpackProgress? progress = null, CancellationToken cancel = default)
    {
        if (!File.Exists(tarball)) throw new UserFacingException($"image tarball '{tarball}' does not exist");
        var export = ExportPaths.Canonical(exportDir);
        if (export == "/") throw new UserFacingException("refusing to use / as an export directory");
        var parent = Path.GetDirectoryName(export)!;
        Directory.CreateDirectory(parent);
        RecoverInterrupted(export);

        var state = new PseudoState(PseudoState.StatePathFor(export));
        bool exportExists = Directory.Exists(export) || File.Exists(export);
        bool exportEmpty = Directory.Exists(export) && !Directory.EnumerateFileSystemEntries(export).Any();
        if (File.Exists(export)) throw new UserFacingException($"'{export}' is a file, not an export directory");
        if (exportExists && !exportEmpty && !replace)
            throw new UserFacingException($"export '{export}' already exists; use 'rootfs-export update' or 'unpack --replace' to replace it");
        if (!exportExists && state.Exists && !replace)
            throw new UserFacingException($"{state.Directory} exists but the export it belongs to does not; remove it or use --replace");

        using var oldLock = Directory.Exists(state.Directory) ? state.AcquireWriterLock() : null;

        var stamp = $"{Environment.ProcessId}-{Random.Shared.Next():x6}";
        var tmpTree = Path.Combine(parent, $".{Path.GetFileName(export)}.rfe-new-{stamp}");
        var tmpState = new PseudoState(tmpTree + ".pseudo_state");
        var started = System.Diagnostics.Stopwatch.StartNew();
        long entries, bytes;
        CompressionKind kind;
        try
        {
            Directory.CreateDirectory(tmpTree);
            Directory.CreateDirectory(tmpState.Directory);
            using (tmpState.AcquireWriterLock())
            using (var db = FilesDb.Open(tmpState))
            using (var writer = new ExportWriter(tmpTree, export, db))
            using (var file = new FileStream(tarball, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan))
            using (var tar = Decompression.OpenDecoded(file, out kind))
            {
                var unpacker = new TarUnpacker(writer, Path.GetFileName(tarball));
                db.InTransaction(() => unpacker.Unpack(tar, progress, cancel));
                entries = unpacker.Entries;
                bytes = file.Position;
            }
            ImageStamp.Write(tmpState, tarball);
        }
        catch
        {
            RemoveTree(tmpTree);
            RemoveTree(tmpState.Directory);
            throw;
        }

        bool replaced = exportExists && !exportEmpty;
        if (!replaced)
        {
            if (exportEmpty) Directory.Delete(export);
            if (Directory.Exists(state.Directory)) RemoveTree(state.Directory); // stale, and we hold its lock
            Rename(tmpTree, export, 0u);
            Rename(tmpState.Directory, state.Directory, 0u);
        }
        else
        {
            File.WriteAllText(SwapJournal(export), $"{tmpTree}\n");
            Rename(tmpTree, export, (uint)Libc.RENAME_EXCHANGE);
            if (Directory.Exists(state.Directory)) Rename(tmpState.Directory, state.Directory, (uint)Libc.RENAME_EXCHANGE);
            else Rename(tmpState.Directory, state.Directory, 0u);
            File.Delete(SwapJournal(export));
            RemoveTree(tmpTree);
            RemoveTree(tmpState.Directory);
        }
        return new UnpackResult(export, state.Directory, entries, bytes, kind, started.Elapsed, replaced);
    }

    private static string SwapJournal(string export) =>
        Path.Combine(Path.GetDirectoryName(export)!, $".{Path.GetFileName(export)}.rfe-swap");

    /// <summary>
    /// Finishes a swap a crash interrupted and removes leftovers of an interrupted unpack. After the tree
    /// exchange the export's root inode is the one the staged files.db describes; if the state was not
    /// exchanged yet, it is now.
    /// </summary>
    public static void RecoverInterrupted(string export)
    {
        var journal = SwapJournal(export);
        var parent = Path.GetDirectoryName(export)!;
        if (!Directory.Exists(parent)) return;
        if (File.Exists(journal))
        {
            var tmpTree = File.ReadAllText(journal).Trim();
            var tmpStateDir = tmpTree + ".pseudo_state";
            var stateDir = PseudoState.StatePathFor(export);
            if (Directory.Exists(tmpStateDir) && Directory.Exists(export) && RootInodeMatches(export, tmpStateDir))
                Rename(tmpStateDir, stateDir, Directory.Exists(stateDir) ? (uint)Libc.RENAME_EXCHANGE : 0u);
            File.Delete(journal);
        }
        foreach (var leftover in Directory.EnumerateDirectories(parent, $".{Path.GetFileName(export)}.rfe-new-*"))
            RemoveTree(leftover);
    }

    private static bool RootInodeMatches(string export, string stateDir)
    {
        try
        {
            using var db = FilesDb.OpenFile(Path.Combine(stateDir, "files.db"), create: false);
            var row = db.GetByPath(export);
            using var dir = HostDirectory.Open(export);
            var st = dir.StatSelf();
            return row != null && row.Ino == st.InoSigned() && row.Dev == st.Dev();
        }
        catch (UserFacingException)
        {
            return false;
        }
    }

    private static void Rename(string from, string to, uint flags)
    {
        if (Libc.RenameAt2(Libc.AT_FDCWD, from, Libc.AT_FDCWD, to, flags) != 0)
            throw PosixException.Last("rename", $"{from} -> {to}");
    }

    /// <summary>rm -rf that never follows symlinks and copes with the modes we leave on disk.</summary>
    public static void RemoveTree(string path)
    {
        if (!Directory.Exists(path) && !File.Exists(path)) return;
        var info = new DirectoryInfo(path);
        if (info.LinkTarget != null || !info.Exists) { File.Delete(path); return; }
        foreach (var entry in info.EnumerateFileSystemInfos())
        {
            if (entry is DirectoryInfo d && d.LinkTarget == null) RemoveTree(d.FullName);
            else entry.Delete();
        }
        info.Delete();
    }
}

/// <summary>Which image an export was made from (real file, size, mtime), so an unchanged image is "up to date".</summary>
public static class ImageStamp
{
    public const string FileName = "rootfs-export.image";

    public static string Describe(string tarball)
    {
        var real = new FileInfo(tarball).ResolveLinkTarget(true)?.FullName ?? Path.GetFullPath(tarball);
        var fi = new FileInfo(real);
        return $"{real}\n{fi.Length}\n{fi.LastWriteTimeUtc.Ticks}\n";
    }

    public static void Write(PseudoState state, string tarball) =>
        File.WriteAllText(Path.Combine(state.Directory, FileName), Describe(tarball));

    public static bool IsCurrent(PseudoState state, string tarball)
    {
        var path = Path.Combine(state.Directory, FileName);
        return File.Exists(path) && File.ReadAllText(path) == Describe(tarball);
    }
}
