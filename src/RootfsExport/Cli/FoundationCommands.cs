using System.CommandLine;

namespace RootfsExport.Cli;

/// <summary>Subcommands of this area (filled in by its issue).</summary>
public static class FoundationCommands
{
    public static IEnumerable<Command> Create() => [];
}
