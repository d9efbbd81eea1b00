using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

/// <summary>
/// The way an engine reaches an export: its canonical path (as pseudo records it), its state directory,
/// the writer lock (taken once, for the handle's lifetime), the export root as a directory fd (every access
/// below it is an *at() call or openat2 RESOLVE_BENEATH through <see cref="HostDirectory"/>, so a symlink the
/// board made never leads out), and files.db, opened on first use and then shared by every step of a run.
/// </summary>
public sealed class ExportHandle : IDisposable
{
    private readonly PseudoState.WriterLock? _writerLock;
    private HostDirectory? _root;
    private FilesDb? _db;

    /// <summary>Canonical absolute path: the prefix of every files.db row of this export.</summary>
    public string Path { get; }
    public PseudoState State { get; }
    public bool Writable => _writerLock != null;

    private ExportHandle(string canonical, PseudoState state, PseudoState.WriterLock? writerLock)
    {
        Path = canonical;
        State = state;
        _writerLock = writerLock;
    }

    /// <summary>
    /// An existing export with its ownership database, for changing it: takes the writer lock (refused while a
    /// pseudo server or another writer holds it; nested in a process that already holds it, as a serve does).
    /// Refused while a board commit into the export is unfinished (<see cref="BoardCommitJournal"/>).
    /// </summary>
    public static ExportHandle OpenForWriting(string exportDir) => Open(exportDir, write: true, finishingCommit: false);

    /// <summary>For `board commit` alone: like <see cref="OpenForWriting"/>, but an unfinished commit is its to finish.</summary>
    public static ExportHandle OpenForBoardCommit(string exportDir) => Open(exportDir, write: true, finishingCommit: true);

    /// <summary>An existing export for reading; says so when a pseudo server may be changing it meanwhile.</summary>
    public static ExportHandle OpenForReading(string exportDir) => Open(exportDir, write: false, finishingCommit: false);

    private static ExportHandle Open(string exportDir, bool write, bool finishingCommit)
    {
        var export = ExportPaths.Canonical(exportDir);
        if (!Directory.Exists(export)) throw new UserFacingException($"export '{export}' does not exist");
        var state = new PseudoState(PseudoState.StatePathFor(export));
        if (!state.Exists) throw new UserFacingException($"'{export}' has no pseudo database ({state.FilesDbPath}); create it with 'rootfs-export unpack'");
        if (!write)
        {
            state.EnsureNoLiveServer();
            return new ExportHandle(export, state, null);
        }
        var writerLock = state.AcquireWriterLock(); // first: a commit still running holds it and is named by the refusal
        try
        {
            if (!finishingCommit) BoardCommitJournal.EnsureNone(export, state);
        }
        catch
        {
            writerLock.Dispose();
            throw;
        }
        return new ExportHandle(export, state, writerLock);
    }

    /// <summary>
    /// The export root, opened once, without following a symlink in its place (the path is canonical: one
    /// there now was put there since); the start of every confined access.
    /// </summary>
    public HostDirectory Root => _root ??= OpenRoot(Path);

    private static HostDirectory OpenRoot(string canonical)
    {
        int fd = Libc.OpenAt(Libc.AT_FDCWD, canonical, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw PosixException.Last("open export directory", canonical);
        return HostDirectory.FromFd(fd);
    }

    /// <summary>files.db, opened on first use (a run with nothing to write never opens it).</summary>
    public FilesDb Db => _db ??= FilesDb.Open(State, create: false);

    /// <summary>One files.db transaction: all of it is recorded, or none (pseudo's next open rolls back the rest).</summary>
    public void InTransaction(Action<FilesDb> change)
    {
        if (!Writable) throw new InvalidOperationException("export opened for reading");
        var db = Db;
        db.InTransaction(() => change(db));
    }

    /// <summary>The files.db path of a path relative to the export root ("" = the root).</summary>
    public string DbPath(string relative) => ExportPaths.Join(Path, relative);

    public void Dispose()
    {
        _db?.Dispose();
        _root?.Dispose();
        _writerLock?.Dispose();
    }
}
