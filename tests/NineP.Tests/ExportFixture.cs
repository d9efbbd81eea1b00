using System.Net;
using System.Net.Sockets;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// A small export with its pseudo state, built the way rootfs-export unpack leaves one: host files owned by
/// the build user with plain modes, ownership in files.db (0:0 files, a 2755 0:42 directory, /dev/null as an
/// empty file recorded as char 1,3), plus an "outside" sibling a confinement breach would touch.
/// </summary>
public sealed class ExportFixture : IDisposable
{
    public ScratchDir Scratch { get; } = new("rfe-9p");
    public string Export => Scratch["export"];
    public string Outside => Scratch["outside"];
    public PseudoState State => PseudoState.ForExport(Export);
    public const string HostnameContent = "board-under-test\n";

    public ExportFixture(int bigFileBytes = 0)
    {
        Directory.CreateDirectory(Export);
        Directory.CreateDirectory(Outside);
        File.WriteAllText(Path.Combine(Outside, "secret"), "outside the export\n");
        foreach (var d in new[] { "etc", "dev", "srv", "srv/shared", "bin" }) Directory.CreateDirectory(Path.Combine(Export, d));
        File.WriteAllText(Path.Combine(Export, "etc/hostname"), HostnameContent);
        File.WriteAllText(Path.Combine(Export, "bin/tool"), "#!/bin/sh\necho tool\n");
        File.WriteAllBytes(Path.Combine(Export, "dev/null"), []);
        File.CreateSymbolicLink(Path.Combine(Export, "etc-link"), "/etc");
        File.CreateSymbolicLink(Path.Combine(Export, "escape"), Outside);
        File.CreateSymbolicLink(Path.Combine(Export, "bin/sh"), "tool");
        if (bigFileBytes > 0)
        {
            var data = new byte[bigFileBytes];
            new Random(5).NextBytes(data);
            File.WriteAllBytes(Path.Combine(Export, "srv/big.bin"), data);
        }

        var exportPath = ExportPaths.Canonical(Export);
        using var db = FilesDb.Open(State);
        using var root = HostDirectory.Open(exportPath);
        db.InTransaction(() =>
        {
            void Row(string rel, uint uid, uint gid, uint mode, long rdev = 0)
            {
                var st = Stat(rel);
                db.PutNew(new FileRow(ExportPaths.Join(exportPath, rel), st.Dev(), st.InoSigned(), uid, gid, mode, rdev));
            }
            Row("", 0, 0, 0x41ed);
            Row("etc", 0, 0, 0x41ed);
            Row("etc/hostname", 0, 0, 0x81a4);
            Row("dev", 0, 0, 0x41ed);
            Row("dev/null", 0, 0, 0x21b6, Libc.MakeDev(1, 3));
            Row("srv", 0, 0, 0x41ed);
            Row("srv/shared", 0, 42, 0x45ed); // 02755
            Row("bin", 0, 0, 0x41ed);
            Row("bin/tool", 0, 0, 0x8000 | 0x9ed); // 04755 setuid
            Row("bin/sh", 0, 0, 0xa1ff);
            Row("etc-link", 0, 0, 0xa1ff);
            Row("escape", 0, 0, 0xa1ff);
            if (bigFileBytes > 0) Row("srv/big.bin", 0, 0, 0x81a4);
        });
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", Scratch.Path).ShouldSucceed();
    }

    private Statx Stat(string rel)
    {
        var full = rel.Length == 0 ? Export : Path.Combine(Export, rel);
        if (Libc.StatxAt(Libc.AT_FDCWD, full, Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC_STATS, out var st) != 0)
            throw PosixException.Last("stat", full);
        return st;
    }

    public string DbPath(string rel) => ExportPaths.Join(ExportPaths.Canonical(Export), rel);

    /// <summary>Reads rows straight from files.db (shared read; our server does not lock the file exclusively).</summary>
    public FileRow? Row(string rel)
    {
        using var db = FilesDb.OpenFile(State.FilesDbPath, create: false);
        return db.GetByPath(DbPath(rel));
    }

    public byte[]? Xattr(string rel, string name)
    {
        using var db = FilesDb.OpenFile(State.FilesDbPath, create: false);
        var row = db.GetByPath(DbPath(rel));
        return row is null ? null : db.GetXattr(row.Dev, row.Ino, name);
    }

    /// <summary>Names in the scratch dir and in outside/: a breach would add to them.</summary>
    public string[] OutsideListing() =>
        Directory.EnumerateFileSystemEntries(Scratch.Path).Concat(Directory.EnumerateFileSystemEntries(Outside))
            .Select(Path.GetFileName).Order().ToArray()!;

    public void Dispose() => Scratch.Dispose();
}

/// <summary>An in-process server on a loopback port for one test.</summary>
public sealed class RunningServer : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Socket _listener;
    public ExportServer Export { get; }
    public int Port { get; }
    public List<string> Log { get; } = new();

    public RunningServer(string exportDir, ServerOptions? options = null)
    {
        Export = ExportServer.Open(exportDir, (options ?? new ServerOptions()) with { Log = l => { lock (Log) Log.Add(l); } });
        _listener = ExportServer.Bind(new Transport.ListenAddress("tcp", "127.0.0.1", 0, null));
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        _loop = Export.Server.ListenAsync(_listener, _stop.Token);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _loop.WaitAsync(TimeSpan.FromSeconds(30));
        _listener.Dispose();
        Export.Dispose();
        Assert.Equal(0, Export.Server.UnexpectedErrors);
    }
}

/// <summary>Tests that count this process's open fds run alone, not beside tests that open their own.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FdCountingCollection
{
    public const string Name = "counts process fds";
}
