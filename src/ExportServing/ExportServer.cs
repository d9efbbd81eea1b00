using System.Net.Sockets;
using RootfsExport.ExportTree;
using RootfsExport.NineP.Server;
using RootfsExport.NineP.Transport;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>
/// An export opened for serving: pseudo's lock held for the whole lifetime (no pseudo server may write the
/// same database meanwhile), files.db open, the 9P server ready for any transport.
/// </summary>
public sealed class ExportServer : IDisposable
{
    private readonly PseudoState.WriterLock _lock;
    private readonly OwnershipStore _store;

    public NinePServer<ExportFid> Server { get; }
    /// <summary>The shared export.</summary>
    public ExportFileSystem FileSystem { get; }
    /// <summary>What the server serves: the shared export and each board's layer over it.</summary>
    public LabFileSystem Lab { get; }
    public PseudoState State { get; }

    private ExportServer(PseudoState state, PseudoState.WriterLock writerLock, OwnershipStore store, LabFileSystem lab, NinePServer<ExportFid> server)
    {
        State = state;
        _lock = writerLock;
        _store = store;
        Lab = lab;
        FileSystem = lab.Shared;
        Server = server;
    }

    public static ExportServer Open(string exportDir, ServerOptions? options = null)
    {
        if (!Directory.Exists(exportDir)) throw new UserFacingException($"export directory {exportDir} does not exist");
        var state = PseudoState.ForExport(exportDir);
        if (!state.Exists)
            throw new UserFacingException($"{exportDir} has no pseudo database ({state.FilesDbPath}); unpack the rootfs with 'rootfs-export unpack' (or runqemu-extract-sdk) first");
        var writerLock = state.AcquireWriterLock();
        try { BoardCommitJournal.EnsureNone(exportDir, state); }
        catch
        {
            writerLock.Dispose();
            throw;
        }
        OwnershipStore? store = null;
        try
        {
            store = new OwnershipStore(FilesDb.Open(state, create: false), options?.Log);
            var lab = new LabFileSystem(new ExportFileSystem(exportDir, store, [exportDir]), options?.Log);
            return new ExportServer(state, writerLock, store, lab, new NinePServer<ExportFid>(lab, options));
        }
        catch
        {
            store?.Dispose();
            writerLock.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Runs a change of the export made on the host by this process (a feed update, through its own files.db
    /// connection under the lock we hold): the board's requests wait at the gate, what they wrote is committed
    /// first, and the ownership cache is reloaded before they go on, so no request sees half of the change.
    /// </summary>
    public T ApplyHostChange<T>(Func<T> change) => Server.Gate.Exclusive(() => _store.Exclusive(change));

    /// <summary>A request handed over for exportDir: refused unless it is the export this serve serves. Returns the canonical path.</summary>
    public string RequireServes(string exportDir)
    {
        var served = FileSystem.ExportPath;
        return ExportPaths.Canonical(exportDir) == served ? served : throw new UserFacingException($"this serve exports {served}, not {exportDir}");
    }

    /// <summary>
    /// `board commit` handed to this serve: between two 9P requests (every connection waits at the gate), the board's
    /// layer is closed, unless the board still has fids in use, and merged into the shared export as the command
    /// does it offline; the ownership cache is reloaded, so every other board and plain client sees the commit whole.
    /// </summary>
    public BoardCommitResult CommitBoard(string board) => ApplyHostChange(() =>
    {
        Lab.CloseBoard(board, "commit");
        return BoardCommit.Commit(FileSystem.ExportPath, board);
    });

    /// <summary>`board reset` handed to this serve: the board's layer closed (refused while it has fids in use) and dropped; what it had changed.</summary>
    public List<BoardChange> ResetBoard(string board) => ApplyHostChange(() =>
    {
        Lab.CloseBoard(board, "reset");
        if (!BoardPaths.For(FileSystem.ExportPath, board).Exists) throw BoardCommit.UnknownBoard(FileSystem.ExportPath, board);
        var changes = BoardLab.Diff(FileSystem.ExportPath, board);
        BoardLab.Reset(FileSystem.ExportPath, board);
        return changes;
    });

    /// <summary>Binds a listening socket (a stale unix socket file is replaced).</summary>
    public static Socket Bind(ListenAddress address)
    {
        Socket s;
        if (address.Scheme == "unix")
        {
            if (File.Exists(address.SocketPath)) File.Delete(address.SocketPath!);
            s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        }
        else
        {
            var ep = (System.Net.IPEndPoint)address.ToEndPoint();
            s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        }
        try
        {
            s.Bind(address.ToEndPoint());
            s.Listen(64);
        }
        catch (SocketException e)
        {
            s.Dispose();
            throw new UserFacingException($"cannot listen on {address}: {e.Message}");
        }
        return s;
    }

    public void Dispose()
    {
        Lab.Dispose();
        FileSystem.Dispose();
        _store.Dispose();
        _lock.Dispose();
    }
}
