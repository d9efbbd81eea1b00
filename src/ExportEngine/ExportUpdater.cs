using RootfsExport.BootSpec;
using RootfsExport.ExportTree;
using RootfsExport.FeedWatcher;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportEngine;

/// <summary>Shows an unpack's progress (the CLI draws a bar); the default shows nothing.</summary>
public delegate UnpackResult UnpackDisplay(string title, long compressedBytes, Func<IUnpackProgress?, UnpackResult> unpack);

/// <summary>
/// The update workflow, the same for `update`, `watch`, `dev` and a serve that an update was handed over to:
/// the export's lock is taken once for the image step, the feeds and the boot entries (no unpack or other update
/// interleaves); the image step (first run creates the export, a newer image replaces it atomically) is followed,
/// under the writer lock taken once and with files.db opened at most once, by the feeds and the boot entries.
/// Only an export with block images (`image`) lets go in between, for their rebuild under pseudo.
/// </summary>
public static class ExportUpdater
{
    /// <param name="serving">the export is being served: a newer image is not swapped in under the board</param>
    public static UpdateOutcome Run(UpdateRequest request, TextWriter output, bool serving, UnpackDisplay? display = null)
    {
        var tarball = request.Layout.FindImageTarball(request.Image);
        var canonical = ExportPaths.Canonical(request.Export);
        Directory.CreateDirectory(Path.GetDirectoryName(canonical)!);
        UpdateOutcome outcome;
        bool blockImages;
        using (var exportLock = ExportLock.Acquire(canonical))
        {
            UpdateTrace.Step("export lock taken");
            int rc = serving ? ReportServedImage(request, tarball, canonical, output) : 0;
            if (!serving) RefreshImage(tarball, canonical, exportLock, output, display);
            UpdateTrace.Step("image step");
            using var export = ExportHandle.OpenForWriting(canonical);
            outcome = ApplyFeeds(request, export, output);
            outcome = outcome with { ExitCode = Math.Max(rc, outcome.ExitCode) };
            UpdateTrace.Step("feeds applied");
            blockImages = BlockExport.ImageRegistry.Read(canonical).Images.Count > 0;
            if (!blockImages) RefreshBootEntries(export, output);
            UpdateTrace.Step("boot entries");
        }
        if (blockImages)
        {
            // block images (`image`) are rebuilt before the boot entries (a rebuilt verity image has a new root
            // hash), with our locks released: mke2fs runs under pseudo, and the rebuild takes the export's lock itself
            BlockExport.ImageUpdates.Refresh(canonical, output);
            using var export = ExportHandle.OpenForWriting(canonical);
            RefreshBootEntries(export, output);
        }
        output.Flush();
        return outcome;
    }

    private static UpdateOutcome ApplyFeeds(UpdateRequest request, ExportHandle export, TextWriter output)
    {
        if (request.NoFeeds) return new UpdateOutcome(0, 0);
        var result = FeedUpdater.Update(new FeedUpdateRequest(export.Path, request.Layout, request.Image, request.Install, output, Handle: export));
        // packages asked for by name that could not be installed make the run fail; feed notes do not
        bool failed = result.Problems.Any(p => request.Install.Any(r => p.StartsWith(r + ":") || p.StartsWith(r + " ")));
        return new UpdateOutcome(failed ? 1 : 0, result.NotReady);
    }

    /// <summary>While a board runs from the export, a newer image is only reported: it would see two root filesystems at once.</summary>
    private static int ReportServedImage(UpdateRequest request, string tarball, string export, TextWriter output)
    {
        if (ImageStamp.IsCurrent(PseudoState.ForExport(export), tarball))
        {
            output.WriteLine($"Export: {request.Export} (image up to date)");
            return 0;
        }
        output.WriteLine($"Image: {tarball} is newer than the export being served: not swapped in while a board runs from it. " +
            $"To move to it: stop serve/dev, run 'rootfs-export update {request.Image}', start serving again and reboot the board. " +
            "Packages from the feeds are still applied to the served image.");
        return 1;
    }

    /// <summary>The image step: first run creates the export, a newer image replaces it atomically, the same image is left alone.</summary>
    private static void RefreshImage(string tarball, string export, ExportLock held, TextWriter output, UnpackDisplay? display)
    {
        ExportCreator.Recover(export, held);
        var state = new PseudoState(PseudoState.StatePathFor(export));
        // a half-committed board is finished by `board commit` from its layer; a new image or a package now would be lost under it
        BoardCommitJournal.EnsureNone(export, state);
        bool present = Directory.Exists(export);
        bool exists = present && state.Exists;
        if (exists && ImageStamp.IsCurrent(state, tarball))
        {
            output.WriteLine($"Export: {export} (image up to date)");
            return;
        }
        bool ours = File.Exists(Path.Combine(state.Directory, ImageStamp.FileName));
        if (present && Directory.EnumerateFileSystemEntries(export).Any() && !ours)
            throw new UserFacingException($"'{export}' exists but was not made by 'rootfs-export update' (no {ImageStamp.FileName} in {state.Directory}); " +
                "refusing to replace it with the image — use 'rootfs-export unpack --replace <tarball> <export>' if that is what you want, or pass another --export");
        // boot entry settings live in the export; carry them over to a replacing image
        var settings = present ? BootEntries.ReadSettings(export) : null;
        bool replace = present;
        UnpackResult Unpack(IUnpackProgress? progress) => ExportCreator.Unpack(tarball, export, replace, progress, held: held);
        var result = display is null ? Unpack(null) : display($"unpack {Path.GetFileName(tarball)}", new FileInfo(tarball).Length, Unpack);
        output.WriteLine($"Export: {result.Export} ({(result.Replaced ? "replaced with the newer image" : "created")}, {result.Entries} entries in {result.Elapsed.TotalSeconds:F2} s)");
        output.WriteLine($"Ownership: {result.StateDir}/files.db");
        if (settings != null) BootEntries.WriteSettings(export, settings);
    }

    /// <summary>Keeps Boot Loader Spec entries written by 'bootspec' in step with the export's kernels; recorded as root's.</summary>
    private static void RefreshBootEntries(ExportHandle export, TextWriter output)
    {
        try
        {
            if (BootEntries.Refresh(export) is not { } result) return;
            ExportAdoption.Sync(export, "loader");
            foreach (var f in result.Written) output.WriteLine($"Boot entry: wrote {f}");
            foreach (var f in result.Removed) output.WriteLine($"Boot entry: removed {f}");
        }
        catch (UserFacingException e)
        {
            Console.Error.WriteLine($"rootfs-export: warning: boot entries not refreshed: {e.Message}");
        }
    }
}
