using RootfsExport.ExportTree;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.PseudoDb;

namespace RootfsExport.Cli;

/// <summary>
/// Where `update`, `watch` and `dev` run the update workflow (<see cref="ExportUpdater"/>): here, or in the
/// process that serves the export, which pauses the board's 9P requests while it runs.
/// </summary>
public static class UpdateSteps
{
    /// <summary>`update`/`watch`: hands the step to a serve of this export when one runs, else does it here.</summary>
    public static UpdateOutcome RunOrHandOver(UpdateHandover request, TextWriter output) =>
        ServeControl.TryHandOver(PseudoState.ForExport(request.Export), request, output) ?? Run(request, output, serving: false);

    /// <summary>In the serving process: the board's 9P requests pause while the step runs, then see all of it.</summary>
    public static UpdateOutcome RunWhileServing(ExportServer server, UpdateHandover request, TextWriter output)
    {
        server.RequireServes(request.Export);
        return server.ApplyHostChange(() => Run(request, output, serving: true));
    }

    /// <param name="serving">the export is being served: a new image is not swapped in under the board</param>
    public static UpdateOutcome Run(UpdateHandover request, TextWriter output, bool serving) =>
        ExportUpdater.Run(request, output, serving, (title, size, unpack) => UnpackProgress.Run(title, size, unpack));
}
