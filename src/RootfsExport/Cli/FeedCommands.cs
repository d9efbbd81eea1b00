using System.CommandLine;
using RootfsExport.FeedWatcher;

namespace RootfsExport.Cli;

/// <summary>watch: update by itself whenever the build drops packages or a new image, or says "build-done".</summary>
public static class FeedCommands
{
    public static IEnumerable<Command> Create()
    {
        var image = new Argument<string>("image") { Description = "image recipe name, e.g. core-image-minimal" };
        var build = FoundationCommands.BuildOptions.Create();
        var cmd = new Command("watch", "Keep the export current: refresh on new packages in the feeds, a new image, or a 'build-done' message on the watch socket; Ctrl-C stops")
        {
            image,
        };
        build.AddTo(cmd);
        cmd.SetAction(async (parse, ct) =>
        {
            var name = parse.GetValue(image)!;
            var (layout, export) = build.Resolve(parse, name);
            Task<bool> Refresh(CancellationToken _)
            {
                var tarball = layout.FindImageTarball(name);
                ImageRefresh.Run(tarball, export);
                var result = FeedUpdater.Update(new FeedUpdateRequest(export, layout, name, [], Console.Out));
                FoundationCommands.BootRefresh(export);
                return Task.FromResult(result.NotReady == 0);
            }
            using var stop = new StopSignal(ct);
            await Refresh(stop.Token);
            await new FeedWatch(layout, name, Refresh, Console.Out).RunAsync(stop.Token);
            Console.WriteLine("watch stopped");
            return 0;
        });
        yield return cmd;
    }
}
