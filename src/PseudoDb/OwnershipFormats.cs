using System.Globalization;
using System.Text;

namespace RootfsExport.PseudoDb;

/// <summary>One line of fakeroot's save file (fakeroot -s / -i): ownership by inode, no paths.</summary>
public sealed record FakerootRecord(long Dev, long Ino, uint Mode, uint Uid, uint Gid, uint Nlink, long Rdev)
{
    /// <summary>fakeroot may save the mode without type bits ("mode=644"): take the type from the file then.</summary>
    public bool HasType => (Mode & FileRow.S_IFMT) != 0;
}

/// <summary>
/// fakeroot's save file: "dev=&lt;hex&gt;,ino=&lt;dec&gt;,mode=&lt;octal&gt;,uid=&lt;dec&gt;,gid=&lt;dec&gt;,nlink=&lt;dec&gt;,rdev=&lt;dec&gt;" per inode.
/// xattrs are not part of the format.
/// </summary>
public static class FakerootSaveFile
{
    public static List<FakerootRecord> Parse(TextReader reader, string fileName)
    {
        var result = new List<FakerootRecord>();
        int lineNo = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var fields = new Dictionary<string, string>();
            foreach (var part in line.Split(','))
            {
                var eq = part.IndexOf('=');
                if (eq <= 0) throw new UserFacingException($"{fileName}:{lineNo}: expected key=value, got '{part}'");
                fields[part[..eq].Trim()] = part[(eq + 1)..].Trim();
            }
            string Field(string key) => fields.TryGetValue(key, out var v) ? v : throw new UserFacingException($"{fileName}:{lineNo}: field '{key}' is missing");
            long Number(string key, int radix)
            {
                try { return Convert.ToInt64(Field(key), radix); }
                catch (FormatException) { throw new UserFacingException($"{fileName}:{lineNo}: field '{key}' is not a base-{radix} number: '{Field(key)}'"); }
                catch (OverflowException) { throw new UserFacingException($"{fileName}:{lineNo}: field '{key}' is out of range: '{Field(key)}'"); }
            }
            if (!ulong.TryParse(Field("ino"), NumberStyles.None, CultureInfo.InvariantCulture, out var ino))
                throw new UserFacingException($"{fileName}:{lineNo}: field 'ino' is not a decimal number: '{Field("ino")}'");
            result.Add(new FakerootRecord(Number("dev", 16), unchecked((long)ino),
                (uint)Number("mode", 8), (uint)Number("uid", 10), (uint)Number("gid", 10),
                fields.ContainsKey("nlink") ? (uint)Number("nlink", 10) : 1, fields.ContainsKey("rdev") ? Number("rdev", 10) : 0));
        }
        return result;
    }

    public static string Format(IEnumerable<FakerootRecord> records)
    {
        var sb = new StringBuilder();
        foreach (var r in records)
            sb.Append($"dev={r.Dev:x},ino={unchecked((ulong)r.Ino)},mode={Convert.ToString(r.Mode, 8)},uid={r.Uid},gid={r.Gid},nlink={r.Nlink},rdev={r.Rdev}\n");
        return sb.ToString();
    }
}

public enum PermsKind { File, Directory, Node }

/// <summary>One line of a PTXdist .perms file; Path is target-absolute; NodeType is 'c', 'b' or 'p' for nodes.</summary>
public sealed record PermsRecord(PermsKind Kind, string Path, uint Uid, uint Gid, uint Mode, char NodeType = '\0', uint Major = 0, uint Minor = 0);

/// <summary>
/// PTXdist's platform-*/state/&lt;pkg&gt;.perms: fields separated by 0x1F (very old PTXdist: ':'):
/// f/d PATH UID GID MODE, or n PATH UID GID MODE TYPE MAJOR MINOR. Mode is octal; symlinks are not listed.
/// </summary>
public static class PtxdistPerms
{
    public const char Separator = '\x1f';

    public static List<PermsRecord> Parse(TextReader reader, string fileName)
    {
        var result = new List<PermsRecord>();
        int lineNo = 0;
        while (reader.ReadLine() is { } line)
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line) || line.StartsWith('#')) continue;
            var f = line.Split(line.Contains(Separator) ? Separator : ':');
            string where = $"{fileName}:{lineNo}";
            uint Num(int i, string name, int radix)
            {
                if (i >= f.Length) throw new UserFacingException($"{where}: field '{name}' is missing");
                try { return Convert.ToUInt32(f[i], radix); }
                catch (Exception e) when (e is FormatException or OverflowException) { throw new UserFacingException($"{where}: field '{name}' is not a valid number: '{f[i]}'"); }
            }
            if (f.Length < 5) throw new UserFacingException($"{where}: expected at least 5 fields, got {f.Length}");
            if (!f[1].StartsWith('/')) throw new UserFacingException($"{where}: path '{f[1]}' is not target-absolute");
            var kind = f[0] switch
            {
                "f" => PermsKind.File,
                "d" => PermsKind.Directory,
                "n" => PermsKind.Node,
                _ => throw new UserFacingException($"{where}: unknown kind '{f[0]}' (expected f, d or n)"),
            };
            var rec = new PermsRecord(kind, f[1], Num(2, "uid", 10), Num(3, "gid", 10), Num(4, "mode", 8));
            if (kind == PermsKind.Node)
            {
                if (f.Length < 8) throw new UserFacingException($"{where}: a node line needs type, major and minor");
                if (f[5] is not ("c" or "b" or "p")) throw new UserFacingException($"{where}: node type '{f[5]}' is not c, b or p");
                rec = rec with { NodeType = f[5][0], Major = Num(6, "major", 10), Minor = Num(7, "minor", 10) };
            }
            result.Add(rec);
        }
        return result;
    }

    public static string Format(IEnumerable<PermsRecord> records)
    {
        var sb = new StringBuilder();
        foreach (var r in records)
        {
            string mode = "0" + Convert.ToString(r.Mode & 0xfff, 8).PadLeft(3, '0');
            var kind = r.Kind switch { PermsKind.File => "f", PermsKind.Directory => "d", _ => "n" };
            sb.Append(string.Join(Separator, kind, r.Path, r.Uid, r.Gid, mode));
            if (r.Kind == PermsKind.Node) sb.Append(Separator).Append(string.Join(Separator, r.NodeType, r.Major, r.Minor));
            sb.Append('\n');
        }
        return sb.ToString();
    }
}
