using System.Security.Cryptography;
using System.Text;
using RootfsExport.Compression;
using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// An .ipk (opkg package): an ar archive (or, legacy, a tar.gz) of debian-binary, control.tar.{gz,xz,zst}
/// and data.tar.{gz,xz,zst}. Reading is streamed; the control part is small and kept, the data is read
/// again when the package is applied.
/// </summary>
public sealed class IpkFile
{
    public required string Path { get; init; }
    public required ControlStanza Control { get; init; }
    /// <summary>Target-absolute conffile paths.</summary>
    public required IReadOnlyList<string> Conffiles { get; init; }
    /// <summary>Maintainer scripts and other control members (postinst, prerm, ...) by name.</summary>
    public required IReadOnlyDictionary<string, byte[]> ControlMembers { get; init; }
    /// <summary>sha256 of the whole file: "same version, different content" is a rebuild to apply.</summary>
    public required string Sha256 { get; init; }

    public string Name => Control.Package;
    public string Version => Control.Version;
    public string Architecture => Control.Architecture;
    public bool HasPostinst => ControlMembers.ContainsKey("postinst");

    public static IpkFile Read(string path)
    {
        string where = System.IO.Path.GetFileName(path);
        ControlStanza? control = null;
        var members = new Dictionary<string, byte[]>();
        bool sawData = false;
        try
        {
            foreach (var (name, stream) in OuterMembers(path, where))
            {
                if (name.StartsWith("control.tar"))
                {
                    using var decoded = Decompression.OpenDecoded(stream, leaveOpen: true);
                    var tar = new TarArchiveReader(decoded);
                    while (tar.Next() is { } m)
                    {
                        var member = m.Name.TrimStart('.', '/');
                        if (m.Type is '0' or '7' && member.Length > 0 && !member.Contains('/'))
                        {
                            using var ms = new MemoryStream();
                            m.Data.CopyTo(ms);
                            members[member] = ms.ToArray();
                        }
                    }
                    control = members.TryGetValue("control", out var c)
                        ? ControlStanza.Parse(Encoding.UTF8.GetString(c), $"{where}: control")
                        : throw new UserFacingException($"{where}: control.tar has no 'control' file");
                }
                else if (name.StartsWith("data.tar")) sawData = true;
            }
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw new UserFacingException($"{where}: not a valid ipk: {e.Message}", e);
        }
        if (control is null) throw new UserFacingException($"{where}: no control.tar member: not an ipk");
        if (!sawData) throw new UserFacingException($"{where}: no data.tar member: not an ipk");
        foreach (var field in new[] { "Package", "Version", "Architecture" })
            if (string.IsNullOrEmpty(control[field])) throw new UserFacingException($"{where}: control field '{field}' is missing");
        members.Remove("control");
        var conffiles = members.TryGetValue("conffiles", out var cf)
            ? Encoding.UTF8.GetString(cf).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList()
            : new List<string>();
        using var file = File.OpenRead(path);
        return new IpkFile
        {
            Path = path, Control = control, Conffiles = conffiles, ControlMembers = members,
            Sha256 = Convert.ToHexStringLower(SHA256.HashData(file)),
        };
    }

    /// <summary>Streams the data.tar members to the callback, in archive order.</summary>
    public void ReadData(Action<TarMember> onMember)
    {
        string where = System.IO.Path.GetFileName(Path);
        foreach (var (name, stream) in OuterMembers(Path, where))
        {
            if (!name.StartsWith("data.tar")) continue;
            using var decoded = Decompression.OpenDecoded(stream, leaveOpen: true);
            var tar = new TarArchiveReader(decoded);
            while (tar.Next() is { } m) onMember(m);
            return;
        }
    }

    /// <summary>The members of the outer container: ar (opkg-build's default) or tar.gz (legacy ipkg-build / -c).</summary>
    private static IEnumerable<(string Name, Stream Data)> OuterMembers(string path, string where)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var magic = new byte[8];
        int n = file.ReadAtLeast(magic, 8, throwOnEndOfStream: false);
        if (n == 8 && magic.AsSpan().SequenceEqual("!<arch>\n"u8))
        {
            var header = new byte[60];
            while (true)
            {
                int h = file.ReadAtLeast(header, 60, throwOnEndOfStream: false);
                if (h == 0) yield break;
                if (h < 60 || header[58] != '`' || header[59] != '\n') throw new UserFacingException($"{where}: corrupt ar header at byte {file.Position - h}");
                var name = Encoding.ASCII.GetString(header, 0, 16).Trim().TrimEnd('/');
                if (!long.TryParse(Encoding.ASCII.GetString(header, 48, 10).Trim(), out long size) || size < 0)
                    throw new UserFacingException($"{where}: corrupt ar member size for '{name}'");
                long start = file.Position;
                if (start + size > file.Length) throw new UserFacingException($"{where}: truncated (member '{name}' needs {size} bytes at {start}, file has {file.Length})");
                yield return (name, new BoundedStream(file, size));
                file.Position = start + size + (size % 2);
            }
        }
        file.Position = 0;
        if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
        {
            using var decoded = Decompression.OpenDecoded(file, leaveOpen: true);
            var tar = new TarArchiveReader(decoded);
            while (tar.Next() is { } m) yield return (m.Name.TrimStart('.', '/'), m.Data);
            yield break;
        }
        throw new UserFacingException($"{where}: neither an ar archive nor a tar.gz: not an ipk");
    }

    /// <summary>A window of the file: reads stop at the member's end.</summary>
    private sealed class BoundedStream(Stream inner, long length) : ReadOnlyStream
    {
        private long _left = length;

        public override int Read(Span<byte> buffer)
        {
            if (_left <= 0) return 0;
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
            _left -= n;
            return n;
        }
    }
}
