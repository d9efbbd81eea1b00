using System.CommandLine;
using RootfsExport.FeedWatcher;

namespace RootfsExport.Cli;

/// <summary>watch: update by itself whenever the build drops packages or a new image, or says "build-done"; feeds: what update would do.</summary>
public static class FeedCommands
{
    public static IEnumerable<Command> Create() => [Watch(), Feeds()];

    private static Command Watch()
    {
        var image = new Argument<string>("image") { Description = "image recipe name, e.g. core-image-minimal" };
        var build = FoundationCommands.BuildOptions.Create();
        var cmd = new Command("watch", "Keep the export current: refresh on new packages in the feeds, a new image, or a 'build-done' message on the watch socket (<build>/.rootfs-export/<image>.sock); Ctrl-C stops")
        {
            image,
        };
        build.AddTo(cmd);
        cmd.SetAction(async (parse, ct) =>
        {
            var name = parse.GetValue(image)!;
            var (layout, export) = build.Resolve(parse, name);
            var request = new UpdateHandover(layout, name, export, [], NoFeeds: false);
            Task<bool> Refresh(CancellationToken _) => Task.FromResult(UpdateSteps.RunOrHandOver(request, Console.Out).NotReady == 0);
            using var stop = new StopSignal(ct);
            if (await FeedWatch.WaitForImage(layout, name, Console.Out, stop.Token)) await Refresh(stop.Token);
            await new FeedWatch(layout, name, Refresh, Console.Out).RunAsync(stop.Token);
            Console.WriteLine("watch stopped");
            return 0;
        });
        return cmd;
    }

    private static Command Feeds()
    {
        var image = new Argument<string>("image") { Description = "image recipe name, e.g. core-image-minimal" };
        var build = FoundationCommands.BuildOptions.Create();
        var install = new Option<string[]>("--install") { Description = "also plan these packages (with their dependencies)", AllowMultipleArgumentsPerToken = true };
        var cmd = new Command("feeds", "Show what 'update' would take from the package feeds (feed directories by priority, installs, upgrades, removals, problems) without changing anything")
        {
            image, install,
        };
        build.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            var name = parse.GetValue(image)!;
            var (layout, export) = build.Resolve(parse, name);
            if (!Directory.Exists(export)) throw new UserFacingException($"export '{export}' does not exist yet: run 'rootfs-export update {name}' first");
            var result = FeedUpdater.Update(new FeedUpdateRequest(export, layout, name, parse.GetValue(install) ?? [], Console.Out, DryRun: true));
            return result.Problems.Count == 0 ? 0 : 1;
        });
        return cmd;
    }
}
