using System.Buffers.Binary;
using System.Text;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// The header of an .rpm: 96-byte lead (magic ed ab ee db), the signature header (padded to 8 bytes), then the
/// main header; each header is magic 8e ad e8 01, 4 reserved bytes, index count and store size (big endian),
/// 16-byte index entries (tag, type, offset, count) and the data store. The compressed cpio payload follows.
/// Only the tags applying a package needs are interpreted.
/// </summary>
public sealed class RpmHeader
{
    public const int NAME = 1000, VERSION = 1001, RELEASE = 1002, EPOCH = 1003, ARCH = 1022;
    public const int PREIN = 1023, POSTIN = 1024, PREUN = 1025, POSTUN = 1026;
    public const int FILESIZES = 1028, FILEMODES = 1030, FILERDEVS = 1033, FILEMTIMES = 1034, FILELINKTOS = 1036, FILEFLAGS = 1037;
    public const int FILEUSERNAME = 1039, FILEGROUPNAME = 1040, PROVIDENAME = 1047, REQUIREFLAGS = 1048, REQUIRENAME = 1049, REQUIREVERSION = 1050;
    public const int PREINPROG = 1085, POSTINPROG = 1086, PREUNPROG = 1087, POSTUNPROG = 1088;
    public const int PROVIDEFLAGS = 1112, PROVIDEVERSION = 1113, DIRINDEXES = 1116, BASENAMES = 1117, DIRNAMES = 1118;
    public const int PAYLOADFORMAT = 1124, PAYLOADCOMPRESSOR = 1125, SUMMARY = 1004, FILEDIGESTS = 1035, FILECAPS = 5010, FILEDIGESTALGO = 5011;
    public const int RPMFILE_CONFIG = 1 << 0, RPMFILE_NOREPLACE = 1 << 4, RPMFILE_GHOST = 1 << 6;
    private const int SENSE_LESS = 2, SENSE_GREATER = 4, SENSE_EQUAL = 8, SENSE_RPMLIB = 1 << 24;

    private readonly Dictionary<int, (int Type, int Offset, int Count)> _index = new();
    private readonly byte[] _store;

    private RpmHeader(byte[] store) => _store = store;

    /// <summary>Reads lead, signature and main header; leaves the stream at the start of the payload.</summary>
    public static RpmHeader Read(Stream s, string where)
    {
        var lead = ReadExactly(s, 96, where, "lead");
        if (lead[0] != 0xed || lead[1] != 0xab || lead[2] != 0xee || lead[3] != 0xdb) throw new UserFacingException($"{where}: no rpm lead magic: not an rpm");
        var sig = ReadOne(s, where, "signature header", out int sigLength);
        _ = sig;
        int pad = (8 - sigLength % 8) % 8;
        ReadExactly(s, pad, where, "signature padding");
        return ReadOne(s, where, "header", out _);
    }

    /// <summary>A header as the rpmdb stores it (Packages.blob): index count, store size, entries, store — no magic.</summary>
    public static RpmHeader FromBlob(byte[] blob, string where)
    {
        var s = new MemoryStream(blob);
        var intro = new byte[16];
        blob.AsSpan(0, Math.Min(8, blob.Length)).CopyTo(intro.AsSpan(8));
        if (blob.Length < 8) throw new UserFacingException($"{where}: rpmdb header blob too short");
        s.Position = 8;
        return ReadBody(s, intro, where, "rpmdb header", out _);
    }

    private static RpmHeader ReadOne(Stream s, string where, string what, out int length)
    {
        var intro = ReadExactly(s, 16, where, what);
        if (intro[0] != 0x8e || intro[1] != 0xad || intro[2] != 0xe8 || intro[3] != 0x01) throw new UserFacingException($"{where}: bad {what} magic: corrupt rpm");
        return ReadBody(s, intro, where, what, out length);
    }

    private static RpmHeader ReadBody(Stream s, byte[] intro, string where, string what, out int length)
    {
        int count = BinaryPrimitives.ReadInt32BigEndian(intro.AsSpan(8));
        int size = BinaryPrimitives.ReadInt32BigEndian(intro.AsSpan(12));
        if (count < 0 || count > 100_000 || size < 0 || size > 256 << 20) throw new UserFacingException($"{where}: implausible {what} size ({count} entries, {size} bytes): corrupt rpm");
        var entries = ReadExactly(s, count * 16, where, what);
        var header = new RpmHeader(ReadExactly(s, size, where, what));
        for (int i = 0; i < count; i++)
        {
            var e = entries.AsSpan(i * 16);
            int tag = BinaryPrimitives.ReadInt32BigEndian(e), type = BinaryPrimitives.ReadInt32BigEndian(e[4..]);
            int offset = BinaryPrimitives.ReadInt32BigEndian(e[8..]), n = BinaryPrimitives.ReadInt32BigEndian(e[12..]);
            if (offset < 0 || offset > size || n < 0) throw new UserFacingException($"{where}: {what} tag {tag} points outside its store: corrupt rpm");
            header._index[tag] = (type, offset, n);
        }
        length = 16 + count * 16 + size;
        return header;
    }

    private static byte[] ReadExactly(Stream s, int n, string where, string what)
    {
        var buffer = new byte[n];
        if (s.ReadAtLeast(buffer, n, throwOnEndOfStream: false) < n) throw new UserFacingException($"{where}: truncated in the rpm {what}");
        return buffer;
    }

    public bool Has(int tag) => _index.ContainsKey(tag);

    public IReadOnlyList<string> Strings(int tag)
    {
        if (!_index.TryGetValue(tag, out var e)) return [];
        var result = new List<string>();
        int pos = e.Offset;
        int count = e.Type is 6 ? 1 : e.Count;
        for (int i = 0; i < count; i++)
        {
            int end = Array.IndexOf(_store, (byte)0, pos);
            if (end < 0) throw new UserFacingException($"rpm header tag {tag}: unterminated string");
            result.Add(Encoding.UTF8.GetString(_store, pos, end - pos));
            pos = end + 1;
        }
        return result;
    }

    public string? String(int tag) => Strings(tag) is [var first, ..] ? first : null;

    public long[] Integers(int tag)
    {
        if (!_index.TryGetValue(tag, out var e)) return [];
        int width = e.Type switch { 2 => 1, 3 => 2, 4 => 4, 5 => 8, _ => throw new UserFacingException($"rpm header tag {tag}: type {e.Type} is not an integer") };
        if (e.Offset + (long)width * e.Count > _store.Length) throw new UserFacingException($"rpm header tag {tag}: array runs past the store");
        var result = new long[e.Count];
        for (int i = 0; i < e.Count; i++)
        {
            var span = _store.AsSpan(e.Offset + i * width);
            result[i] = width switch
            {
                1 => span[0],
                2 => BinaryPrimitives.ReadUInt16BigEndian(span),
                4 => BinaryPrimitives.ReadUInt32BigEndian(span),
                _ => BinaryPrimitives.ReadInt64BigEndian(span),
            };
        }
        return result;
    }

    /// <summary>The package version as a Debian-style string: [epoch:]version-release.</summary>
    public string FullVersion()
    {
        var epoch = Integers(EPOCH);
        return (epoch.Length > 0 && epoch[0] > 0 ? $"{epoch[0]}:" : "") + $"{String(VERSION)}-{String(RELEASE)}";
    }

    /// <summary>Target-absolute file paths, in header order (BASENAMES/DIRNAMES/DIRINDEXES).</summary>
    public IReadOnlyList<string> FilePaths()
    {
        var basenames = Strings(BASENAMES);
        var dirnames = Strings(DIRNAMES);
        var dirindexes = Integers(DIRINDEXES);
        var result = new List<string>(basenames.Count);
        for (int i = 0; i < basenames.Count; i++)
        {
            int d = i < dirindexes.Length ? (int)dirindexes[i] : -1;
            if (d < 0 || d >= dirnames.Count) throw new UserFacingException($"rpm header: file {basenames[i]} has no directory");
            result.Add((dirnames[d] + basenames[i]).TrimEnd('/') is { Length: > 0 } p ? p : "/");
        }
        return result;
    }

    public IEnumerable<string> Conffiles()
    {
        var paths = FilePaths();
        var flags = Integers(FILEFLAGS);
        for (int i = 0; i < paths.Count && i < flags.Length; i++)
            if ((flags[i] & RPMFILE_CONFIG) != 0 && (flags[i] & RPMFILE_GHOST) == 0) yield return paths[i];
    }

    /// <summary>Conffile digests as the rpmdb records them: "sha256:&lt;hex&gt;" (FILEDIGESTALGO 8) or an md5.</summary>
    public IEnumerable<(string Path, string Digest)> ConffileDigests()
    {
        var paths = FilePaths();
        var flags = Integers(FILEFLAGS);
        var digests = Strings(FILEDIGESTS);
        var algo = Integers(FILEDIGESTALGO) is [var a, ..] ? a : 1;
        for (int i = 0; i < paths.Count && i < flags.Length && i < digests.Count; i++)
            if ((flags[i] & RPMFILE_CONFIG) != 0 && digests[i].Length > 0)
                yield return (paths[i], algo == 8 ? "sha256:" + digests[i] : digests[i]);
    }

    /// <summary>The header in Debian control terms, so planning treats all formats alike.</summary>
    public ControlStanza ToControl()
    {
        var c = new ControlStanza();
        c["Package"] = String(NAME) ?? throw new UserFacingException("rpm header has no name");
        c["Version"] = FullVersion();
        c["Architecture"] = String(ARCH) ?? "noarch";
        var depends = Relations(REQUIRENAME, REQUIREFLAGS, REQUIREVERSION)
            .Where(r => !r.StartsWith("rpmlib(") && !r.StartsWith('/') && !r.StartsWith("config(")).Distinct().ToList();
        if (depends.Count > 0) c["Depends"] = string.Join(", ", depends);
        var provides = Relations(PROVIDENAME, PROVIDEFLAGS, PROVIDEVERSION).Distinct().ToList();
        if (provides.Count > 0) c["Provides"] = string.Join(", ", provides);
        if (String(SUMMARY) is { } summary) c["Description"] = summary;
        return c;
    }

    private IEnumerable<string> Relations(int nameTag, int flagsTag, int versionTag)
    {
        var names = Strings(nameTag);
        var flags = Integers(flagsTag);
        var versions = Strings(versionTag);
        for (int i = 0; i < names.Count; i++)
        {
            long f = i < flags.Length ? flags[i] : 0;
            if ((f & SENSE_RPMLIB) != 0) continue;
            var v = i < versions.Count ? versions[i] : "";
            string? op = (f & (SENSE_LESS | SENSE_GREATER | SENSE_EQUAL)) switch
            {
                SENSE_LESS => "<<", SENSE_LESS | SENSE_EQUAL => "<=", SENSE_EQUAL => "=",
                SENSE_GREATER | SENSE_EQUAL => ">=", SENSE_GREATER => ">>", _ => null,
            };
            yield return op is null || v.Length == 0 ? names[i] : $"{names[i]} ({op} {v})";
        }
    }
}

/// <summary>
/// The cpio "newc" payload of an rpm, turned into tar-like members with the header's owners, modes, device
/// numbers and link targets (the cpio's own uid/gid are not authoritative). Hard links: rpm writes the data
/// with the last name of a link set; the others come first with size 0 and are linked once it arrives.
/// </summary>
internal static class CpioReader
{
    public static IEnumerable<ExportTree.TarMember> Members(Stream payload, RpmHeader header, Func<(string, string), (uint, uint)> resolveOwner, string where)
    {
        var paths = header.FilePaths();
        var byPath = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < paths.Count; i++) byPath[paths[i]] = i;
        var users = header.Strings(RpmHeader.FILEUSERNAME);
        var groups = header.Strings(RpmHeader.FILEGROUPNAME);
        var rdevs = header.Integers(RpmHeader.FILERDEVS);
        var links = header.Strings(RpmHeader.FILELINKTOS);
        var caps = header.Strings(RpmHeader.FILECAPS);
        var pendingLinks = new Dictionary<long, List<string>>();
        var fields = new byte[110];
        long offset = 0;
        while (true)
        {
            var (ino, mode, nlink, mtime, size, name, headerBytes) = ReadHeader(payload, fields, offset, where);
            offset += headerBytes;
            if (name == "TRAILER!!!") yield break;
            var target = "/" + name.TrimStart('.', '/');
            if (!byPath.TryGetValue(target, out int idx)) throw new UserFacingException($"{where}: payload file {target} is not in the rpm header");
            var (uid, gid) = resolveOwner((idx < users.Count ? users[idx] : "root", idx < groups.Count ? groups[idx] : "root"));
            var data = new PackageFile.BoundedStream(payload, size);
            var tarType = MemberType(mode, target, where);
            if (tarType == ExportTree.TarMemberType.File && nlink > 1 && size == 0)
            {
                // an earlier name of a hard-link set: linked when the name with the data arrives
                if (!pendingLinks.TryGetValue(ino, out var list)) pendingLinks[ino] = list = new();
                list.Add(target);
                continue;
            }
            string linkName = tarType == ExportTree.TarMemberType.Symlink ? SymlinkTarget(data, links, idx) : "";
            long rdev = idx < rdevs.Length ? rdevs[idx] : 0;
            var member = new ExportTree.TarMember
            {
                Name = "." + target, LinkName = linkName, Type = tarType, Mode = mode & 0xfff, Uid = uid, Gid = gid, Size = size,
                Mtime = DateTimeOffset.FromUnixTimeSeconds(mtime), DevMajor = (uint)((rdev >> 8) & 0xfff), DevMinor = (uint)(rdev & 0xff),
                Pax = Capability(caps, idx, target, where), Data = data,
            };
            yield return member;
            data.CopyTo(Stream.Null);
            Skip(payload, Pad(size));
            offset += size + Pad(size);
            if (tarType == ExportTree.TarMemberType.File && pendingLinks.Remove(ino, out var names))
                foreach (var other in names) yield return HardLink(other, target, member);
        }
    }

    /// <summary>One newc header and its name: (ino, mode, nlink, mtime, size, name, bytes read including padding).</summary>
    private static (long, uint, uint, uint, long, string, int) ReadHeader(Stream payload, byte[] fields, long offset, string where)
    {
        if (payload.ReadAtLeast(fields, 110, throwOnEndOfStream: false) < 110) throw new UserFacingException($"{where}: rpm payload truncated at byte {offset}");
        if (!fields.AsSpan(0, 6).SequenceEqual("070701"u8) && !fields.AsSpan(0, 6).SequenceEqual("070702"u8))
            throw new UserFacingException($"{where}: rpm payload is not a newc cpio at byte {offset}");
        uint Hex(int i) => Convert.ToUInt32(Encoding.ASCII.GetString(fields, 6 + i * 8, 8), 16);
        int nameSize = (int)Hex(11);
        if (nameSize <= 0 || nameSize > 65536) throw new UserFacingException($"{where}: rpm payload name size {nameSize} at byte {offset}");
        var nameBytes = new byte[nameSize + Pad(110 + nameSize)];
        if (payload.ReadAtLeast(nameBytes, nameBytes.Length, false) < nameBytes.Length) throw new UserFacingException($"{where}: rpm payload truncated in a name");
        var name = Encoding.UTF8.GetString(nameBytes, 0, nameSize - 1);
        return (Hex(0), Hex(1), Hex(4), Hex(5), Hex(6), name, 110 + nameBytes.Length);
    }

    private static ExportTree.TarMemberType MemberType(uint mode, string target, string where) => (mode & 0xf000) switch
    {
        0x4000 => ExportTree.TarMemberType.Directory, 0xa000 => ExportTree.TarMemberType.Symlink, 0x2000 => ExportTree.TarMemberType.CharDevice,
        0x6000 => ExportTree.TarMemberType.BlockDevice, 0x1000 => ExportTree.TarMemberType.Fifo, 0x8000 => ExportTree.TarMemberType.File,
        _ => throw new UserFacingException($"{where}: {target} has an unsupported file type {mode & 0xf000:x}"),
    };

    /// <summary>A symlink's target from its data, or from the header when the payload carries none.</summary>
    private static string SymlinkTarget(Stream data, IReadOnlyList<string> links, int idx)
    {
        using var ms = new MemoryStream();
        data.CopyTo(ms);
        var target = Encoding.UTF8.GetString(ms.ToArray());
        return target.Length == 0 && idx < links.Count ? links[idx] : target;
    }

    /// <summary>An earlier name of a hard-link set, linked to the name that carried the data.</summary>
    private static ExportTree.TarMember HardLink(string other, string target, ExportTree.TarMember member) => new()
    {
        Name = "." + other, LinkName = "." + target, Type = ExportTree.TarMemberType.HardLink, Mode = member.Mode, Uid = member.Uid, Gid = member.Gid, Size = 0,
        Mtime = member.Mtime, DevMajor = 0, DevMinor = 0, Pax = new Dictionary<string, byte[]>(), Data = Stream.Null,
    };

    /// <summary>%caps of a file as the PAX xattr record a data.tar would carry (rpm sets it with cap_set_file).</summary>
    private static Dictionary<string, byte[]> Capability(IReadOnlyList<string> caps, int idx, string target, string where)
    {
        var pax = new Dictionary<string, byte[]>();
        if (idx < caps.Count && caps[idx].Length > 0 && FileCapabilities.FromText(caps[idx], $"{where}: {target}: %caps") is { } value)
            pax["SCHILY.xattr." + MemberXattrs.CapabilityXattr] = value;
        return pax;
    }

    private static int Pad(long n) => (int)((4 - n % 4) % 4);

    private static void Skip(Stream s, int n)
    {
        Span<byte> b = stackalloc byte[4];
        if (n > 0 && s.ReadAtLeast(b[..n], n, false) < n) throw new EndOfStreamException("rpm payload truncated in padding");
    }
}

/// <summary>The image's rpmdb (rpm ≥ 4.16: var/lib/rpm/rpmdb.sqlite, table Packages(hnum, blob)), read from a copy.</summary>
internal static class RpmDb
{
    public static List<RpmHeader> Installed(TargetTree tree, ExportTree.ExportPath dbPath)
    {
        var db = "/" + dbPath.Value;
        var result = new List<RpmHeader>();
        // a copy, read through the confined tree: opening the original, even read-only, could create -shm/-wal files in the export
        if (tree.ReadAllBytes(dbPath) is not { } bytes) return result;
        var tmp = Path.Combine(Path.GetTempPath(), $"rootfs-export-rpmdb-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        try
        {
            File.WriteAllBytes(Path.Combine(tmp, "rpmdb.sqlite"), bytes);
            if (tree.ReadAllBytes(ExportTree.ExportPath.Parse(dbPath.Value + "-wal")) is { } wal) File.WriteAllBytes(Path.Combine(tmp, "rpmdb.sqlite-wal"), wal);
            using var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(tmp, "rpmdb.sqlite")};Pooling=False");
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "SELECT hnum, blob FROM Packages ORDER BY hnum";
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
                result.Add(RpmHeader.FromBlob((byte[])reader.GetValue(1), $"rpmdb.sqlite package {reader.GetInt64(0)}"));
        }
        catch (Microsoft.Data.Sqlite.SqliteException e)
        {
            throw new UserFacingException($"{db}: cannot read the rpm database: {e.Message}");
        }
        finally
        {
            Directory.Delete(tmp, recursive: true);
        }
        return result;
    }
}
