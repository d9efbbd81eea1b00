using System.CommandLine;
using RootfsExport.Cli;

// A background job of a shell starts with SIGINT ignored, and then Ctrl-C or kill -INT would never stop a serve,
// dev or watch: back to the defaults before anything registers its handlers (StopSignal, Console).
RootfsExport.Posix.Native.Signals.UnignoreInherited(RootfsExport.Posix.Native.Signals.SIGINT);
RootfsExport.Posix.Native.Signals.UnignoreInherited(RootfsExport.Posix.Native.Signals.SIGTERM);

// Each area of the tool contributes its own subcommands; Program only assembles them.
var root = new RootCommand("rootfs-export: unpack, update and serve an embedded-Linux root filesystem with pseudo-compatible ownership, as an ordinary user.");
foreach (var command in FoundationCommands.Create()
             .Concat(FeedCommands.Create())
             .Concat(BootCommands.Create())
             .Concat(PayloadCommands.Create())
             .Concat(ServeCommands.Create())
             .Concat([DevCommand.Create()])
             .Concat(UsbCommands.Create())
             .Concat(InstallCommand.Create())
             .Concat(BlockCommands.Create())
             .Concat(BoardCommands.Create()))
    root.Subcommands.Add(command);

return await CliRunner.RunAsync(root, args);
