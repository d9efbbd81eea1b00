using System.CommandLine;
using RootfsExport.Cli;

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
