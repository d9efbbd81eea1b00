using System.CommandLine;

namespace RootfsExport.Cli;

/// <summary>`serve`: the export over NFS (unfsd under pseudo); 9P lands with the 9P server.</summary>
public static class ServeCommands
{
    public static IEnumerable<Command> Create()
    {
        var export = new Argument<string>("export") { Description = "the export directory" };
        var nfs = new NfsServe();
        var cmd = new Command("serve", "serve an export to a board or guest with the ownership from the pseudo database");
        cmd.Arguments.Add(export);
        nfs.AddTo(cmd);
        cmd.SetAction(async (parse, ct) =>
        {
            if (!parse.GetValue(nfs.Nfs)) throw new UserFacingException("choose a transport: --nfs");
            return await nfs.RunAsync(parse, parse.GetValue(export)!, ct);
        });
        yield return cmd;
    }
}
