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
    /// <param name="held">the export's lock when the caller (a whole update) already holds it</param>
    public static UnpackResult Unpack(string tarball, string exportDir, bool replace, IUnpackProgress? progress = null, CancellationToken cancel = default, ExportLock? held = null)
    {
        CheckTarball(tarball);
        var export = ExportPaths.Canonical(exportDir);
        if (export == "/") throw new UserFacingException("refusing to use / as an export directory");
        var parent = Path.GetDirectoryName(export)!;
        Directory.CreateDirectory(parent);
        // the lock first: recovery removes staging directories, which must not be another live run's
        using var ownLock = held is null ? ExportLock.Acquire(export) : null;
        RecoverLocked(export);

        var state = new PseudoState(PseudoState.StatePathFor(export));
        bool exportExists = Directory.Exists(export) || File.Exists(export);
        bool exportEmpty = Directory.Exists(export) && !Directory.EnumerateFileSystemEntries(export).Any();
        if (File.Exists(export)) throw new UserFacingException($"'{export}' is a file, not an export directory");
        if (exportExists && !exportEmpty && !replace)
            throw new UserFacingException($"export '{export}' already exists; use 'rootfs-export update' or 'unpack --replace' to replace it");
        if (!exportExists && state.Exists && !replace)
            throw new UserFacingException($"{state.Directory} exists but the export it belongs to does not; remove it or use --replace");

        using var oldLock = Directory.Exists(state.Directory) ? state.AcquireWriterLock() : null;
        if (exportExists && !exportEmpty) RefuseOverUnfinishedCommit(export, state);

        var stamp = $"{Environment.ProcessId}-{Random.Shared.Next():x6}";
        var tmpTree = Path.Combine(parent, $".{Path.GetFileName(export)}.rfe-new-{stamp}");
        var started = System.Diagnostics.Stopwatch.StartNew();
        var (entries, bytes, kind) = BuildStaged(tarball, export, tmpTree, progress, cancel);
        bool replaced = exportExists && !exportEmpty;
        SwapIn(export, tmpTree, state, replaced, exportEmpty);
        return new UnpackResult(export, state.Directory, entries, bytes, kind, started.Elapsed, replaced);
    }

    /// <summary>
    /// A board commit that stopped part way has renamed objects into the export that files.db does not have yet;
    /// replacing tree and state would silently drop the journal and the half-merged objects with them. Only
    /// `board commit` finishes it; no command abandons it (what was already moved in is not told apart).
    /// </summary>
    private static void RefuseOverUnfinishedCommit(string export, PseudoState state)
    {
        if (BoardCommitJournal.Unfinished(export, state) is not { } why) return;
        throw new UserFacingException($"cannot replace {export} now: {why}, then run 'rootfs-export unpack --replace' again " +
            "(no command abandons an interrupted commit: objects of the board may already be in the export)");
    }

    /// <summary>The new tree and its files.db beside the export (rows carry the final paths); removed again on any failure.</summary>
    private static (long Entries, long Bytes, CompressionKind Kind) BuildStaged(string tarball, string export, string tmpTree, IUnpackProgress? progress, CancellationToken cancel)
    {
        var tmpState = new PseudoState(tmpTree + ".pseudo_state");
        var started = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            Directory.CreateDirectory(tmpTree);
            Directory.CreateDirectory(tmpState.Directory);
            long entries, bytes;
            CompressionKind kind;
            using (tmpState.AcquireWriterLock())
            using (var db = FilesDb.Open(tmpState))
            using (var file = new FileStream(tarball, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan))
            using (var tar = Decompression.OpenDecoded(file, out kind))
            using (var tx = db.BeginTransaction())
            {
                // the writer (and its files.db thread) ends before the transaction commits or rolls back
                using (var writer = new ExportWriter(tmpTree, export, db, newTree: true))
                {
                    var unpacker = new TarUnpacker(writer, Path.GetFileName(tarball));
                    unpacker.Unpack(tar, progress, cancel);
                    writer.Flush();
                    entries = unpacker.Entries;
                }
                tx.Commit();
                bytes = file.Position;
                UnpackPhases.Print("unpack", started.Elapsed, DecoderPhases(tar));
            }
            ImageStamp.Write(tmpState, tarball);
            return (entries, bytes, kind);
        }
        catch
        {
            RemoveTree(tmpTree);
            RemoveTree(tmpState.Directory);
            throw;
        }
    }

    private static (string, long)[] DecoderPhases(Stream tar) =>
        tar is ReadAheadStream r ? [("decoder thread busy", r.DecodeTicks), ("waited for decoded data", r.ConsumerWaitTicks)] : [];

    /// <summary>Moves the staged tree and state into place: a fresh create by rename, a replace by exchange.</summary>
    private static void SwapIn(string export, string tmpTree, PseudoState state, bool replace, bool exportEmpty)
    {
        var tmpState = tmpTree + ".pseudo_state";
        // the journal lets the next run finish the state's move if this one dies between the two renames
        File.WriteAllText(SwapJournal(export), $"{tmpTree}\n");
        if (!replace)
        {
            if (exportEmpty) Directory.Delete(export);
            if (Directory.Exists(state.Directory)) RemoveTree(state.Directory); // stale, and we hold its lock
            Rename(tmpTree, export, 0u);
            Rename(tmpState, state.Directory, 0u);
            File.Delete(SwapJournal(export));
            return;
        }
        Rename(tmpTree, export, (uint)Libc.RENAME_EXCHANGE);
        if (Directory.Exists(state.Directory)) Rename(tmpState, state.Directory, (uint)Libc.RENAME_EXCHANGE);
        else Rename(tmpState, state.Directory, 0u);
        File.Delete(SwapJournal(export));
        RemoveTree(tmpTree);
        RemoveTree(tmpState);
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
        if (!Directory.Exists(Path.GetDirectoryName(export)!)) return;
        using var exportLock = ExportLock.Acquire(export);
        RecoverLocked(export);
    }

    /// <summary>Recovery for a caller that holds the export's lock already.</summary>
    public static void Recover(string export, ExportLock held) => RecoverLocked(export);

    /// <summary>Recovery proper; the caller holds the export's lock, so every staging directory is a dead run's.</summary>
    private static void RecoverLocked(string export)
    {
        var journal = SwapJournal(export);
        var parent = Path.GetDirectoryName(export)!;
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

    /// <summary>rm -rf that never follows symlinks, through *at() calls: works on trees deeper than PATH_MAX.</summary>
    public static void RemoveTree(string path)
    {
        HostDirectory parent;
        try { parent = HostDirectory.Open(Path.GetDirectoryName(path)!); }
        catch (PosixException e) when (e.Errno == Errno.ENOENT) { return; }
        using (parent) parent.RemoveTree(Path.GetFileName(path));
    }

    /// <summary>
    /// The tarball must be a regular file (symlinks to one are fine, OE's images are symlinks): a FIFO would
    /// block the open forever, a directory would fail later with a misleading message.
    /// </summary>
    private static void CheckTarball(string tarball)
    {
        if (Libc.StatxAt(Libc.AT_FDCWD, tarball, 0, Libc.STATX_BASIC_STATS, out var st) != 0)
        {
            var e = PosixException.Last("stat", tarball);
            throw new UserFacingException(e.Errno == Errno.ENOENT
                ? $"image tarball '{tarball}' does not exist"
                : $"image tarball '{tarball}': {Libc.Strerror(e.Errno)}");
        }
        string? what = StMode.Type(st.Mode) switch
        {
            Libc.S_IFREG => null,
            Libc.S_IFDIR => "a directory",
            Libc.S_IFIFO => "a FIFO",
            Libc.S_IFSOCK => "a socket",
            Libc.S_IFCHR => "a character device",
            Libc.S_IFBLK => "a block device",
            _ => "not a regular file",
        };
        if (what != null) throw new UserFacingException($"image tarball '{tarball}' is {what}, not a tarball");
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
