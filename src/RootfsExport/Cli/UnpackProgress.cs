using System.Diagnostics;
using RootfsExport.ExportTree;
using RootfsExport.Posix.Native;
using Spectre.Console;

namespace RootfsExport.Cli;

/// <summary>
/// Progress for long jobs: a live bar (entries, bytes, rate) on a terminal, a plain line every few
/// seconds otherwise (logs, CI), nothing per entry.
/// </summary>
public sealed class UnpackProgress : IUnpackProgress
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly long _totalBytes;
    private readonly ProgressTask? _task;
    private TimeSpan _lastLine;

    private UnpackProgress(long totalBytes, ProgressTask? task)
    {
        _totalBytes = totalBytes;
        _task = task;
    }

    public static bool IsTerminal => Libc.Isatty(2) == 1 && Environment.GetEnvironmentVariable("TERM") is not (null or "dumb");

    /// <summary>Runs the job with a progress display suited to where stderr goes.</summary>
    public static T Run<T>(string title, long compressedBytes, Func<IUnpackProgress, T> job)
    {
        if (!IsTerminal) return job(new UnpackProgress(compressedBytes, null));
        T result = default!;
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .Columns(new SpinnerColumn(), new TaskDescriptionColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: 1);
                result = job(new UnpackProgress(compressedBytes, task));
                task.Value = 1;
            });
        return result;
    }

    public long CompressedRead { get; set; }

    public void Report(long entries, long bytes)
    {
        var now = _clock.Elapsed;
        // called per entry: update the display at most 10 times a second (rendering costs more than an entry)
        if (now - _lastLine < (_task != null ? TimeSpan.FromMilliseconds(100) : TimeSpan.FromSeconds(5))) return;
        double rate = bytes / Math.Max(now.TotalSeconds, 0.001) / 1e6;
        if (_task != null)
        {
            _lastLine = now;
            _task.Description = $"{entries,7} entries  {bytes / 1e6,8:F1} MB  {rate,6:F1} MB/s";
            return;
        }
        _lastLine = now;
        Console.Error.WriteLine($"unpacked {entries} entries, {bytes / 1e6:F1} MB ({rate:F1} MB/s)");
    }
}
