using System.Runtime.InteropServices;

namespace RootfsExport.Cli;

/// <summary>
/// A token for long-running commands (serve, watch) that Ctrl-C and SIGTERM cancel, so they stop cleanly
/// (children stopped, databases committed) instead of being killed.
/// </summary>
public sealed class StopSignal : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly ConsoleCancelEventHandler _onCancel;
    private readonly PosixSignalRegistration _onTerm;

    public CancellationToken Token => _stop.Token;

    public StopSignal(CancellationToken outer)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _onCancel = (_, e) => { e.Cancel = true; _stop.Cancel(); };
        Console.CancelKeyPress += _onCancel;
        _onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; _stop.Cancel(); });
    }

    public void Dispose()
    {
        Console.CancelKeyPress -= _onCancel;
        _onTerm.Dispose();
        _stop.Dispose();
    }
}
