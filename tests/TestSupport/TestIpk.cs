using System.Formats.Tar;
using System.IO.Compression;
using System.Text;

namespace RootfsExport.TestSupport;

/// <summary>
/// Our own ipk writer for fixtures: the ar outer opkg-build writes (or the legacy tar.gz outer), control and data
/// tars with numeric owners, compressed with gzip in-process or xz/zstd by the real tools (as OE 4.x/5.x do).
/// </summary>
public static class TestIpk
{
    /// <param name="Bytes">a regular file's content as bytes (a program), instead of <paramref name="Content"/></param>
    public sealed record Entry(string Path, string? Content, int Mode = 0x1a4, int Uid = 0, int Gid = 0, string? LinkTo = null, byte[]? Bytes = null)
    {
        public bool IsDirectory => Content is null && Bytes is null && LinkTo is null;
    }

    public static void Write(string outFile, string control, IEnumerable<Entry> data, string compression = "gz", bool legacyTarGz = false,
        IDictionary<string, string>? controlMembers = null)
    {
        var controlEntries = new List<Entry> { new("./", null, 0x1ed), new("./control", control) };
        foreach (var (name, text) in controlMembers ?? new Dictionary<string, string>())
            controlEntries.Add(new("./" + name, text, name.EndsWith("inst") || name.EndsWith("rm") || name.Contains("inst-") ? 0x1ed : 0x1a4));
        var dataEntries = new List<Entry> { new("./", null, 0x1ed) };
        var dirs = new HashSet<string>();
        foreach (var e in data)
        {
            var parts = e.Path.Trim('/').Split('/');
            for (int k = 1; k < parts.Length; k++)
            {
                var d = "./" + string.Join('/', parts[..k]) + "/";
                if (dirs.Add(d) && !data.Any(x => "./" + x.Path.Trim('/') + "/" == d)) dataEntries.Add(new(d, null, 0x1ed));
            }
            dataEntries.Add(e with { Path = "./" + e.Path.Trim('/') + (e.IsDirectory ? "/" : "") });
        }
        var members = new List<(string Name, byte[] Data)>
        {
            ("debian-binary", "2.0\n"u8.ToArray()),
            ("control.tar.gz", Compress(Tar(controlEntries), "gz")),
            ($"data.tar.{compression}", Compress(Tar(dataEntries), compression)),
        };
        Directory.CreateDirectory(Path.GetDirectoryName(outFile)!);
        using var output = File.Create(outFile);
        if (legacyTarGz)
        {
            var outer = new MemoryStream();
            using (var w = new TarWriter(outer, TarEntryFormat.Gnu, leaveOpen: true))
                foreach (var (name, bytes) in members)
                    w.WriteEntry(new GnuTarEntry(TarEntryType.RegularFile, "./" + name) { DataStream = new MemoryStream(bytes), Mode = (UnixFileMode)0x1a4 });
            output.Write(Compress(outer.ToArray(), "gz"));
            return;
        }
        output.Write("!<arch>\n"u8);
        foreach (var (name, bytes) in members)
        {
            output.Write(Encoding.ASCII.GetBytes($"{name + "/",-16}{0,-12}{0,-6}{0,-6}{"100644",-8}{bytes.Length,-10}`\n"));
            output.Write(bytes);
            if (bytes.Length % 2 == 1) output.WriteByte((byte)'\n');
        }
    }

    private static byte[] Tar(IEnumerable<Entry> entries)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Gnu, leaveOpen: true))
            foreach (var e in entries)
            {
                var type = e.LinkTo != null ? TarEntryType.SymbolicLink : e.IsDirectory ? TarEntryType.Directory : TarEntryType.RegularFile;
                var t = new GnuTarEntry(type, e.Path) { Mode = (UnixFileMode)e.Mode, Uid = e.Uid, Gid = e.Gid, ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1700000000) };
                if (e.LinkTo != null) t.LinkName = e.LinkTo;
                if (!e.IsDirectory && e.LinkTo is null) t.DataStream = new MemoryStream(e.Bytes ?? Encoding.UTF8.GetBytes(e.Content!));
                w.WriteEntry(t);
            }
        return ms.ToArray();
    }

    private static byte[] Compress(byte[] raw, string kind)
    {
        if (kind == "gz")
        {
            var ms = new MemoryStream();
            using (var gz = new GZipStream(ms, CompressionLevel.Optimal, leaveOpen: true)) gz.Write(raw);
            return ms.ToArray();
        }
        var tmp = Path.GetTempFileName();
        File.WriteAllBytes(tmp, raw);
        Run.Program(kind == "zst" ? "zstd" : "xz", "-q", "-f", tmp).ShouldSucceed();
        var packed = tmp + (kind == "zst" ? ".zst" : ".xz");
        var bytes = File.ReadAllBytes(packed);
        File.Delete(tmp);
        File.Delete(packed);
        return bytes;
    }
}
