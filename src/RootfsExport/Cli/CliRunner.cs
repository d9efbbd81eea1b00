using System.CommandLine;

namespace RootfsExport.Cli;

/// <summary>Runs the parsed command; turns the domain's expected failures into one clear line and exit code 1.</summary>
public static class CliRunner
{
    public static async Task<int> RunAsync(RootCommand root, string[] args)
    {
        // servers stop cleanly on Ctrl-C/SIGTERM (stop children, flush pseudo): give them time before the process is ended
        var config = new InvocationConfiguration { EnableDefaultExceptionHandler = false, ProcessTerminationTimeout = TimeSpan.FromSeconds(90) };
        try
        {
            return await root.Parse(args).InvokeAsync(config);
        }
        catch (UserFacingException e)
        {
            Console.Error.WriteLine($"rootfs-export: error: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // file system errors name their path (PosixException always does); no stack trace for those
            Console.Error.WriteLine($"rootfs-export: error: {e.Message}");
            return 1;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("rootfs-export: interrupted");
            return 130;
        }
    }
}
