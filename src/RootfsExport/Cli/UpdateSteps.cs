using RootfsExport.ExportTree;
using RootfsExport.FeedWatcher;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.PseudoDb;

namespace RootfsExport.Cli;

/// <summary>How one update went: the exit code, and how many package files were still being written (watch retries those).</summary>
public readonly record struct UpdateOutcome(int ExitCode, int NotReady);

/// <summary>
/// The update step (image, feeds, boot entries), shared by `update`, `watch` and `dev`, run either by the
/// command itself or by the process that serves the export.
/// </summary>
public static class UpdateSteps
{
    /// <summary>`update`/`watch`: hands the step to a serve of this export when one runs, else does it here.</summary>
    public static UpdateOutcome RunOrHandOver(UpdateHandover request, TextWriter output) =>
        ServeControl.TryHandOver(PseudoState.ForExport(request.Export), request, output) ?? Run(request, output, serving: false);

    /// <summary>In the serving process: the board's 9P requests pause while the step runs, then see all of it.</summary>
    public static UpdateOutcome RunWhileServing(ExportServer server, UpdateHandover request, TextWriter output)
    {
        var served = server.FileSystem.ExportPath;
        if (ExportPaths.Canonical(request.Export) != served)
            throw new UserFacingException($"this serve exports {served}, not {request.Export}");
        return server.ApplyHostChange(() => Run(request, output, serving: true));
    }

    /// <param name="serving">the export is being served: a new image is not swapped in under the board</param>
    public static UpdateOutcome Run(UpdateHandover request, TextWriter output, bool serving)
    {
        var tarball = request.Layout.FindImageTarball(request.Image);
        int rc = 0;
        if (!serving) ImageRefresh.Run(tarball, request.Export, output);
        else if (!ImageStamp.IsCurrent(PseudoState.ForExport(request.Export), tarball))
        {
            // a running board would see files of two root filesystems at once; it has to boot the new image
            output.WriteLine($"Image: {tarball} is newer than the export being served: not swapped in while a board runs from it. " +
                $"To move to it: stop serve/dev, run 'rootfs-export update {request.Image}', start serving again and reboot the board. " +
                "Packages from the feeds are still applied to the served image.");
            rc = 1;
        }
        else output.WriteLine($"Export: {request.Export} (image up to date)");
        int notReady = 0;
        if (!request.NoFeeds)
        {
            var result = FeedUpdater.Update(new FeedUpdateRequest(request.Export, request.Layout, request.Image, request.Install, output));
            notReady = result.NotReady;
            // packages asked for by name that could not be installed make the run fail; feed notes do not
            if (result.Problems.Any(p => request.Install.Any(r => p.StartsWith(r + ":") || p.StartsWith(r + " ")))) rc = 1;
        }
        BlockExport.ImageUpdates.Refresh(request.Export, output); // before the entries: a rebuilt verity image has a new root hash
        FoundationCommands.BootRefresh(request.Export, output);
        output.Flush();
        return new UpdateOutcome(rc, notReady);
    }
}
