using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using RootfsExport.ExportTree;
using RootfsExport.PseudoDb;

namespace RootfsExport.BlockExport;

/// <summary>What `image` was asked for.</summary>
/// <param name="SizeSpec">auto, or a size: bytes or a number with K, M, G or T (binary units)</param>
/// <param name="Epoch">SOURCE_DATE_EPOCH; null = the newest mtime in the export</param>
public sealed record ImageRequest(string Export, string Output, string SizeSpec = "auto", bool Verity = false, long? Epoch = null, string? PseudoBinary = null);

public sealed record ImageResult(string Image, ImageRecord Record, long Entries, TimeSpan Elapsed);

/// <summary>
/// An ext4 image of an export, built as an ordinary user: e2fsprogs' own <c>mke2fs -d</c> copies the tree, run
/// under the real pseudo on the export's state, so every stat, readlink and getxattr it makes answers from
/// files.db (owners, modes, device numbers, capabilities) as it would for a root-built tree. Reproducible: the
/// UUID and directory hash seed derive from the export's name, mke2fs runs with E2FSPROGS_FAKE_TIME, and a debugfs
/// pass sets every inode's atime and ctime to the epoch and clamps newer mtimes to it (mke2fs 1.47.0 copies the
/// host's atime and ctime, which change by themselves).
/// </summary>
public static class Ext4Image
{
    public static ImageResult Build(ImageRequest request, TextWriter? log = null)
    {
        var started = DateTime.UtcNow;
        var export = ExportPaths.Canonical(request.Export);
        var output = Path.GetFullPath(request.Output);
        CheckOutput(export, output);
        var state = PseudoState.ForExport(export);
        if (state.HeldByThisProcess) throw new UserFacingException($"the export {export} is being served by this process; pseudo cannot read it now");
        state.EnsureNoLiveServer();
        var pseudo = PseudoRunner.Locate(request.PseudoBinary, null);
        using var exportLock = ExportLock.Acquire(export); // no update replaces the export while mke2fs reads it

        var survey = ExportSurvey.Take(export);
        long epoch = request.Epoch ?? survey.NewestMtime;
        long inodes = survey.Entries * 2 + 4096;
        long bytes = FilesystemBytes(request.SizeSpec, survey, inodes);
        var uuid = DerivedUuid(export, "uuid");
        var tmp = Path.Combine(Path.GetDirectoryName(output)!, $".{Path.GetFileName(output)}.tmp-{Environment.ProcessId}");
        try
        {
            MakeFilesystem(export, tmp, bytes, inodes, uuid, epoch, pseudo);
            FixTimes(tmp, epoch, survey, RootMode(state, export));
            var verity = request.Verity ? VerityTree.Append(tmp, bytes, uuid, DerivedSalt(export)) : null;
            File.Move(tmp, output, overwrite: true);
            var record = new ImageRecord
            {
                Export = export, Fingerprint = survey.Fingerprint, SizeSpec = request.SizeSpec, FilesystemBytes = bytes,
                Epoch = epoch, EpochFromEnvironment = request.Epoch is not null, Uuid = uuid, Verity = verity,
            };
            record.Write(output);
            ImageRegistry.Add(export, output);
            return new ImageResult(output, record, survey.Entries, DateTime.UtcNow - started);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    private static void CheckOutput(string export, string output)
    {
        if (output == export || output.StartsWith(export + "/", StringComparison.Ordinal))
            throw new UserFacingException($"-o {output}: the image must not be inside the export it holds");
        var dir = Path.GetDirectoryName(output)!;
        if (!Directory.Exists(dir)) throw new UserFacingException($"-o {output}: directory {dir} does not exist");
        if (Directory.Exists(output)) throw new UserFacingException($"-o {output}: is a directory");
    }

    /// <summary>auto: the content with a quarter more room, the inode table, journal and 32 MiB; else the size given.</summary>
    public static long FilesystemBytes(string spec, ExportSurvey survey, long inodes)
    {
        long needed = survey.DataBlocks * ExportSurvey.BlockSize + inodes * 256;
        if (spec == "auto")
        {
            long bytes = needed + survey.DataBlocks * ExportSurvey.BlockSize / 4 + (64L << 20) + (32L << 20);
            return (bytes + (1L << 20) - 1) & ~((1L << 20) - 1);
        }
        long given = ParseSize(spec);
        if (given < needed + (8L << 20))
            throw new UserFacingException($"--size {spec}: the export needs at least {Mib(needed + (8L << 20))} MiB; pass a larger size or --size auto");
        return given;
    }

    public static long ParseSize(string spec)
    {
        var s = spec.Trim();
        int shift = s.Length == 0 ? 0 : char.ToUpperInvariant(s[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
        if (shift != 0) s = s[..^1];
        if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0 || n > (1L << (62 - shift)))
            throw new UserFacingException($"--size: '{spec}' is not auto or a size like 512M, 2G or 1073741824");
        long bytes = n << shift;
        return (bytes + ExportSurvey.BlockSize - 1) / ExportSurvey.BlockSize * ExportSurvey.BlockSize;
    }

    private static long Mib(long bytes) => (bytes + (1L << 20) - 1) >> 20;

    /// <summary>A UUID from the export's name (not its path, so the same export elsewhere gives the same image).</summary>
    public static string DerivedUuid(string export, string purpose)
    {
        var h = SHA256.HashData(Encoding.UTF8.GetBytes($"rootfs-export {purpose} {Path.GetFileName(export)}"));
        h[6] = (byte)((h[6] & 0x0f) | 0x50); // name-based (version 5 layout)
        h[8] = (byte)((h[8] & 0x3f) | 0x80);
        return new Guid(h.AsSpan(0, 16), bigEndian: true).ToString();
    }

    private static string DerivedSalt(string export) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"rootfs-export verity-salt {Path.GetFileName(export)}")));

    private static uint RootMode(PseudoState state, string export)
    {
        using var db = FilesDb.Open(state, create: false);
        return db.GetByPath(export)?.Mode ?? 0x41ed;
    }

    private static (uint Uid, uint Gid) RootOwner(PseudoState state, string export)
    {
        using var db = FilesDb.Open(state, create: false);
        var row = db.GetByPath(export);
        return row is null ? (0, 0) : (row.Uid, row.Gid);
    }

    private static void MakeFilesystem(string export, string image, long bytes, long inodes, string uuid, long epoch, PseudoRunner pseudo)
    {
        var mke2fs = HostPrograms.Require("mke2fs", "e2fsprogs");
        var (uid, gid) = RootOwner(PseudoState.ForExport(export), export);
        using (File.Create(image)) { }
        var env = pseudo.EnvironmentFor(export);
        env["E2FSPROGS_FAKE_TIME"] = epoch.ToString(CultureInfo.InvariantCulture);
        try
        {
            HostPrograms.Run(pseudo.Binary, [mke2fs, "-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-N", inodes.ToString(CultureInfo.InvariantCulture),
                "-m", "1", "-U", uuid, "-E", $"hash_seed={DerivedUuid(export, "hash_seed")},root_owner={uid}:{gid}", "-d", export,
                image, (bytes / 1024).ToString(CultureInfo.InvariantCulture) + "k"], env);
        }
        finally
        {
            pseudo.Stop(export);
        }
    }

    /// <summary>
    /// atime and ctime of every inode in use := epoch; mtimes newer than the epoch := epoch; the root directory's
    /// mode from files.db (mke2fs makes it 0755). One debugfs run over a command file.
    /// </summary>
    private static void FixTimes(string image, long epoch, ExportSurvey survey, uint rootMode)
    {
        var commands = new StringBuilder();
        commands.Append(CultureInfo.InvariantCulture, $"sif <2> mode 0{Convert.ToString(rootMode, 8)}\n");
        foreach (var ino in Ext4Layout.UsedInodes(image))
            commands.Append(CultureInfo.InvariantCulture, $"sif <{ino}> atime @{epoch}\nsif <{ino}> ctime @{epoch}\n");
        foreach (var (path, mtime) in survey.Mtimes.Where(m => m.Mtime > epoch))
            commands.Append(CultureInfo.InvariantCulture, $"sif {Ext4Layout.Quote(path)} mtime @{epoch}\n");
        var script = image + ".debugfs";
        File.WriteAllText(script, commands.ToString());
        try
        {
            var env = new Dictionary<string, string?> { ["E2FSPROGS_FAKE_TIME"] = epoch.ToString(CultureInfo.InvariantCulture) };
            var r = Posix.ChildProcess.Capture(HostPrograms.Require("debugfs", "e2fsprogs"), ["-w", "-f", script, image], env, TimeSpan.FromMinutes(30));
            Ext4Layout.ThrowOnDebugfsErrors(r.ExitCode, r.Stderr);
        }
        finally
        {
            File.Delete(script);
        }
    }
}
