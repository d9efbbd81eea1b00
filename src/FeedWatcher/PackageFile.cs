using System.Security.Cryptography;
using System.Text;
using RootfsExport.Compression;
using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

public enum PackageFormat { Ipk, Deb, Rpm }

/// <summary>
/// A package file of any of the three feed formats, reduced to what applying it needs: a control stanza in
/// Debian syntax (rpm headers are translated), conffiles, maintainer scripts and other control members, the
/// sha256 of the whole file, and a streamed walk over its data members.
/// ipk/deb: an ar archive (ipk also legacy tar.gz) of debian-binary, control.tar.* and data.tar.*.
/// rpm: lead, signature header, header, compressed cpio payload (see <see cref="RpmHeader"/>).
/// </summary>
public sealed class PackageFile
{
    public required string Path { get; init; }
    public required PackageFormat Format { get; init; }
    public required ControlStanza Control { get; init; }
    /// <summary>Target-absolute conffile paths.</summary>
    public required IReadOnlyList<string> Conffiles { get; init; }
    /// <summary>Maintainer scripts and other control members (postinst, prerm, md5sums, ...) by name.</summary>
    public required IReadOnlyDictionary<string, byte[]> ControlMembers { get; init; }
    /// <summary>Permission bits of each control member as the control.tar has them (ipk/deb).</summary>
    public IReadOnlyDictionary<string, uint> ControlModes { get; init; } = new Dictionary<string, uint>();
    /// <summary>sha256 of the whole file: "same version, different content" is a rebuild to apply.</summary>
    public required string Sha256 { get; init; }
    /// <summary>rpm only: the parsed header (owners by name, config flags, rdevs).</summary>
    public RpmHeader? Rpm { get; init; }

    public string Name => Control.Package;
    public string Version => Control.Version;
    public string Architecture => Control.Architecture;
    public bool HasPostinst => ControlMembers.ContainsKey("postinst");
    private string Where => System.IO.Path.GetFileName(Path);

    public static PackageFormat FormatOf(string path) => System.IO.Path.GetExtension(path) switch
    {
        ".deb" => PackageFormat.Deb,
        ".rpm" => PackageFormat.Rpm,
        _ => PackageFormat.Ipk,
    };

    /// <param name="verifyData">also read the data to its end, so a truncated package is refused before anything is written</param>
    public static PackageFile Read(string path, bool verifyData = false)
    {
        var format = FormatOf(path);
        string where = System.IO.Path.GetFileName(path);
        try
        {
            var pkg = format == PackageFormat.Rpm ? ReadRpm(path, where) : ReadDebianStyle(path, where, format);
            if (verifyData) pkg.ReadData(static m => m.Data.CopyTo(Stream.Null), _ => (0u, 0u));
            return pkg;
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException or OverflowException or ArgumentException)
        {
            throw new UserFacingException($"{where}: not a valid {format.ToString().ToLowerInvariant()}: {e.Message}", e);
        }
        catch (UserFacingException e) when (!e.Message.StartsWith(where))
        {
            throw new UserFacingException($"{where}: {e.Message}", e);
        }
    }

    private static string Sha256Of(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(file));
    }

    private static PackageFile ReadDebianStyle(string path, string where, PackageFormat format)
    {
        ControlStanza? control = null;
        var members = new Dictionary<string, byte[]>();
        var modes = new Dictionary<string, uint>();
        bool sawData = false;
        foreach (var (name, stream) in OuterMembers(path, where))
        {
            if (name.StartsWith("control.tar"))
            {
                using var decoded = Decompression.OpenDecoded(stream, leaveOpen: true, small: IsSmall(stream));
                var tar = new TarArchiveReader(decoded);
                while (tar.Next() is { } m)
                {
                    var member = m.Name.TrimStart('.', '/');
                    if (m.Type.IsFile() && member.Length > 0 && !member.Contains('/'))
                    {
                        using var ms = new MemoryStream();
                        m.Data.CopyTo(ms);
                        members[member] = ms.ToArray();
                        modes[member] = m.Mode & 0xfff;
                    }
                }
                control = members.TryGetValue("control", out var c)
                    ? ControlStanza.Parse(Encoding.UTF8.GetString(c), $"{where}: control")
                    : throw new UserFacingException($"{where}: control.tar has no 'control' file");
            }
            else if (name.StartsWith("data.tar")) sawData = true;
        }
        string kind = format.ToString().ToLowerInvariant();
        if (control is null) throw new UserFacingException($"{where}: no control.tar member: not an {kind}");
        if (!sawData) throw new UserFacingException($"{where}: no data.tar member: not an {kind}");
        foreach (var field in new[] { "Package", "Version", "Architecture" })
            if (string.IsNullOrEmpty(control[field])) throw new UserFacingException($"{where}: control field '{field}' is missing");
        members.Remove("control");
        var conffiles = members.TryGetValue("conffiles", out var cf)
            ? Encoding.UTF8.GetString(cf).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(l => l.StartsWith('/')).ToList()
            : new List<string>();
        return new PackageFile { Path = path, Format = format, Control = control, Conffiles = conffiles, ControlMembers = members, ControlModes = modes, Sha256 = Sha256Of(path) };
    }

    private static PackageFile ReadRpm(string path, string where)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var header = RpmHeader.Read(file, where);
        var control = header.ToControl();
        var members = new Dictionary<string, byte[]>();
        foreach (var (tag, progTag, name) in new[] { (RpmHeader.PREIN, RpmHeader.PREINPROG, "preinst"), (RpmHeader.POSTIN, RpmHeader.POSTINPROG, "postinst"), (RpmHeader.PREUN, RpmHeader.PREUNPROG, "prerm"), (RpmHeader.POSTUN, RpmHeader.POSTUNPROG, "postrm") })
        {
            var body = header.String(tag);
            var prog = header.Strings(progTag).FirstOrDefault();
            if (body is null && prog is null) continue;
            members[name] = Encoding.UTF8.GetBytes($"#!{prog ?? "/bin/sh"}\n{body}\n");
        }
        return new PackageFile
        {
            Path = path, Format = PackageFormat.Rpm, Control = control, Conffiles = header.Conffiles().ToList(),
            ControlMembers = members, Sha256 = Sha256Of(path), Rpm = header,
        };
    }

    /// <summary>
    /// Streams the data members (tar members; rpm cpio entries translated to them) in archive order.
    /// resolveOwner maps rpm's user/group names to ids (ipk/deb carry numeric ids).
    /// </summary>
    public void ReadData(Action<TarMember> onMember, Func<(string User, string Group), (uint Uid, uint Gid)> resolveOwner)
    {
        if (Format == PackageFormat.Rpm)
        {
            using var file = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            var header = RpmHeader.Read(file, Where);
            using var decoded = Decompression.OpenDecoded(file, leaveOpen: true);
            foreach (var m in CpioReader.Members(decoded, header, resolveOwner, Where)) onMember(m);
            return;
        }
        foreach (var (name, stream) in OuterMembers(Path, Where))
        {
            if (!name.StartsWith("data.tar")) continue;
            using var decoded = Decompression.OpenDecoded(stream, leaveOpen: true, small: IsSmall(stream));
            var tar = new TarArchiveReader(decoded);
            while (tar.Next() is { } m) onMember(m);
            return;
        }
    }

    /// <summary>
    /// A member up to 1 MiB compressed is decoded inline: the read-ahead thread pays off for big data members,
    /// while for a rebuilt package's few files its buffers (10 MiB per stream, four streams per applied package)
    /// cost more than the decoding.
    /// </summary>
    private static bool IsSmall(Stream member) => member is BoundedStream { Size: <= 1 << 20 };

    /// <summary>The members of the outer container: ar (opkg-build's default, dpkg-deb) or tar.gz (legacy ipkg-build / -c).</summary>
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
        throw new UserFacingException($"{where}: neither an ar archive nor a tar.gz: not an ipk/deb");
    }

    /// <summary>A window of the file: reads stop at the member's end.</summary>
    internal sealed class BoundedStream(Stream inner, long length) : ReadOnlyStream
    {
        private long _left = length;

        public long Size { get; } = length;

        public override int Read(Span<byte> buffer)
        {
            if (_left <= 0) return 0;
            int n = inner.Read(buffer[..(int)Math.Min(buffer.Length, _left)]);
            if (n == 0) throw new EndOfStreamException($"{_left} bytes missing at the end of a member");
            _left -= n;
            return n;
        }
    }
}
