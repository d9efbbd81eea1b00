using RootfsExport.ExportTree;
using RootfsExport.PseudoDb;

namespace RootfsExport.Cli;

/// <summary>The image step of update/watch: first run creates the export, a newer image replaces it atomically.</summary>
public static class ImageRefresh
{
    public enum Outcome { Created, Replaced, UpToDate }

    public static Outcome Run(string tarball, string export, TextWriter? output = null)
    {
        output ??= Console.Out;
        var canonical = ExportPaths.Canonical(export);
        ExportCreator.RecoverInterrupted(canonical);
        var state = new PseudoState(PseudoState.StatePathFor(canonical));
        bool exists = Directory.Exists(canonical) && state.Exists;
        if (exists && ImageStamp.IsCurrent(state, tarball))
        {
            output.WriteLine($"Export: {canonical} (image up to date)");
            return Outcome.UpToDate;
        }
        bool ours = File.Exists(Path.Combine(state.Directory, ImageStamp.FileName));
        if (Directory.Exists(canonical) && Directory.EnumerateFileSystemEntries(canonical).Any() && !ours)
            throw new UserFacingException($"'{canonical}' exists but was not made by 'rootfs-export update' (no {ImageStamp.FileName} in {state.Directory}); " +
                "refusing to replace it with the image — use 'rootfs-export unpack --replace <tarball> <export>' if that is what you want, or pass another --export");
        // boot entry settings live in the export; carry them over to a replacing image
        var settings = Directory.Exists(canonical) ? BootSpec.BootEntries.ReadSettings(canonical) : null;
        long size = new FileInfo(tarball).Length;
        var result = UnpackProgress.Run($"unpack {Path.GetFileName(tarball)}", size,
            progress => ExportCreator.Unpack(tarball, canonical, replace: exists || Directory.Exists(canonical), progress));
        output.WriteLine($"Export: {result.Export} ({(result.Replaced ? "replaced with the newer image" : "created")}, {result.Entries} entries in {result.Elapsed.TotalSeconds:F2} s)");
        output.WriteLine($"Ownership: {result.StateDir}/files.db");
        if (settings != null) BootSpec.BootEntries.WriteSettings(canonical, settings);
        return result.Replaced ? Outcome.Replaced : Outcome.Created;
    }
}
