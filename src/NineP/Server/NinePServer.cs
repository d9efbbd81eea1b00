using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Transport;
using RootfsExport.Posix;

namespace RootfsExport.NineP.Server;

public sealed record ServerOptions
{
    /// <summary>Largest msize we agree to (Linux asks 128 KiB + 24 by default; up to 4 MiB possible).</summary>
    public int MaxMessageSize { get; init; } = 4 * 1024 * 1024 + P9.IoHeaderSize;
    /// <summary>Requests of one connection served at the same time.</summary>
    public int MaxConcurrentRequests { get; init; } = 32;
    /// <summary>One line per request and reply, when set.</summary>
    public Action<string>? Trace { get; init; }
    /// <summary>Failures that are not an errno (bugs): reported here besides being answered with EIO.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// 9P2000.L server for one export. Each connection reads frames in one loop and serves its requests
/// concurrently (bounded), one reply per request, in any order; Tflush is answered after the flushed
/// request's reply. Fids and their host fds go with a clunk, a Tversion reset or the disconnect.
/// </summary>
public sealed partial class NinePServer<TFid>(INinePFileSystem<TFid> fs, ServerOptions? options = null) where TFid : NinePFid
{
    private readonly ServerOptions _options = options ?? new ServerOptions();
    private long _unexpected;

    public INinePFileSystem<TFid> FileSystem => fs;

    /// <summary>Every request passes it; a host-side change of the export closes it for its duration.</summary>
    public RequestGate Gate { get; } = new();

    /// <summary>Exceptions that were not an errno from the host or the protocol (should stay 0).</summary>
    public long UnexpectedErrors => Interlocked.Read(ref _unexpected);

    /// <summary>
    /// Serves one client until it disconnects or the token fires; never throws for client misbehaviour. A blocking
    /// transport (<see cref="IBlockingNinePTransport"/>, e.g. usb9pfs) is served on a thread of its own.
    /// </summary>
    public Task ServeAsync(INinePTransport transport, CancellationToken cancellationToken) =>
        transport is IBlockingNinePTransport
            ? Task.Factory.StartNew(() => Serve(transport, cancellationToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)
            : new Connection(this, transport).RunAsync(cancellationToken);

    /// <summary>Serves a blocking transport's client on the calling thread, which its loop keeps.</summary>
    private void Serve(INinePTransport transport, CancellationToken cancellationToken) =>
        new Connection(this, transport).RunAsync(cancellationToken).GetAwaiter().GetResult();

    /// <summary>Accepts TCP or unix-socket clients until the token fires.</summary>
    public async Task ListenAsync(Socket listener, CancellationToken cancellationToken)
    {
        MemoryTrace.StartIfAsked();
        var clients = new List<Task>();
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                Socket s;
                try { s = await listener.AcceptAsync(cancellationToken); }
                catch (OperationCanceledException) { break; }
                if (s.ProtocolType == ProtocolType.Tcp) s.NoDelay = true;
                // one thread per connection with blocking socket calls (see StreamTransport); stopping closes
                // the socket, which ends a blocked read
                var t = new StreamTransport(new NetworkStream(s, ownsSocket: true), s.RemoteEndPoint?.ToString() ?? "unix client");
                lock (clients)
                {
                    clients.RemoveAll(c => c.IsCompleted);
                    clients.Add(Task.Factory.StartNew(() =>
                    {
                        using var unblock = cancellationToken.Register(s.Dispose);
                        try { Serve(t, cancellationToken); }
                        finally { t.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                    }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default));
                }
            }
        }
        finally
        {
            Task[] pending;
            lock (clients) pending = clients.ToArray();
            await Task.WhenAll(pending);
        }
    }

    internal void Unexpected(Exception e, string what)
    {
        Interlocked.Increment(ref _unexpected);
        _options.Log?.Invoke($"9p: unexpected error in {what}: {e.GetType().Name}: {e.Message} ({e.StackTrace?.TrimStart().Split('\n')[0].Trim()})"); // one line, not a trace
    }
}
