using System.Net;
using System.Net.Sockets;

namespace RootfsExport.NineP.Transport;

/// <summary>Where the server listens: "tcp:HOST:PORT" or "unix:/path".</summary>
public sealed record ListenAddress(string Scheme, string Host, int Port, string? SocketPath)
{
    public static ListenAddress Parse(string spec)
    {
        if (spec.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = spec[5..];
            if (path.Length == 0) throw new UserFacingException("unix: needs a socket path, e.g. unix:/run/user/1000/rootfs.9p");
            return new ListenAddress("unix", "", 0, Path.GetFullPath(path));
        }
        var rest = spec.StartsWith("tcp:", StringComparison.Ordinal) ? spec[4..] : spec;
        int colon = rest.LastIndexOf(':');
        string host = colon < 0 ? "127.0.0.1" : rest[..colon];
        var portText = colon < 0 ? rest : rest[(colon + 1)..];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        if (host.Length == 0) host = "127.0.0.1";
        if (!int.TryParse(portText, out var port) || port < 0 || port > 65535)
            throw new UserFacingException($"bad 9P listen address '{spec}': expected tcp:HOST:PORT or unix:/path");
        return new ListenAddress("tcp", host, port, null);
    }

    public EndPoint ToEndPoint() => Scheme == "unix"
        ? new UnixDomainSocketEndPoint(SocketPath!)
        : new IPEndPoint(System.Net.IPAddress.Parse(Host), Port);

    public override string ToString() => Scheme == "unix" ? $"unix:{SocketPath}" : $"tcp:{Host}:{Port}";
}
