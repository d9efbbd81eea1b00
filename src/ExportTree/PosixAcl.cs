using System.Buffers.Binary;

namespace RootfsExport.ExportTree;

/// <summary>
/// POSIX ACLs as the kernel stores them in system.posix_acl_access/default xattrs, and pseudo's rule for
/// them: an access ACL sets the permission bits from its USER_OBJ/GROUP_OBJ/OTHER entries (pseudo ignores
/// MASK here, unlike the kernel) and is kept as an xattr only when it has extended entries.
/// </summary>
public sealed record PosixAcl(IReadOnlyList<PosixAcl.Entry> Entries)
{
    public const string AccessXattr = "system.posix_acl_access";
    public const string DefaultXattr = "system.posix_acl_default";

    public const ushort UserObj = 0x01, User = 0x02, GroupObj = 0x04, Group = 0x08, Mask = 0x10, Other = 0x20;
    private const uint Undefined = 0xFFFFFFFF;

    public readonly record struct Entry(ushort Tag, ushort Perm, uint Id);

    public bool IsExtended => Entries.Any(e => e.Tag is User or Group or Mask);

    /// <summary>The rwx bits pseudo derives: user from USER_OBJ, group from GROUP_OBJ, other from OTHER.</summary>
    public uint PermissionBits()
    {
        uint Perm(ushort tag) => Entries.FirstOrDefault(e => e.Tag == tag).Perm & 7u;
        return (Perm(UserObj) << 6) | (Perm(GroupObj) << 3) | Perm(Other);
    }

    /// <summary>The xattr value: version 2, entries sorted by tag then id.</summary>
    public byte[] ToXattr()
    {
        var sorted = Entries.OrderBy(e => e.Tag).ThenBy(e => e.Id).ToList();
        var buf = new byte[4 + 8 * sorted.Count];
        BinaryPrimitives.WriteUInt32LittleEndian(buf, 2);
        for (int i = 0; i < sorted.Count; i++)
        {
            var span = buf.AsSpan(4 + 8 * i);
            BinaryPrimitives.WriteUInt16LittleEndian(span, sorted[i].Tag);
            BinaryPrimitives.WriteUInt16LittleEndian(span[2..], sorted[i].Perm);
            BinaryPrimitives.WriteUInt32LittleEndian(span[4..], sorted[i].Id);
        }
        return buf;
    }

    public static PosixAcl FromXattr(ReadOnlySpan<byte> value, string where)
    {
        if (value.Length < 4 || (value.Length - 4) % 8 != 0 || BinaryPrimitives.ReadUInt32LittleEndian(value) != 2)
            throw new UserFacingException($"{where}: malformed POSIX ACL xattr ({value.Length} bytes)");
        var entries = new List<Entry>();
        for (int off = 4; off < value.Length; off += 8)
            entries.Add(new Entry(BinaryPrimitives.ReadUInt16LittleEndian(value[off..]), BinaryPrimitives.ReadUInt16LittleEndian(value[(off + 2)..]),
                BinaryPrimitives.ReadUInt32LittleEndian(value[(off + 4)..])));
        return new PosixAcl(entries);
    }

    /// <summary>
    /// Parses GNU tar's SCHILY.acl.* text ("user::rwx,user:1000:r-x,group::r-x,mask::rwx,other::r--",
    /// entries separated by ',' or newlines; a name qualifier may carry its numeric id as a 4th field).
    /// </summary>
    public static PosixAcl FromText(string text, string where)
    {
        var entries = new List<Entry>();
        foreach (var raw in text.Split([',', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var item = raw.Split('#')[0].Trim();
            if (item.Length == 0) continue;
            var f = item.Split(':');
            if (f.Length < 3) throw new UserFacingException($"{where}: malformed ACL entry '{item}'");
            string tagName = f[0], qualifier = f[1], perms = f[2];
            uint id = Undefined;
            if (qualifier.Length > 0)
            {
                if (!uint.TryParse(qualifier, out id) && !(f.Length > 3 && uint.TryParse(f[3], out id)))
                    throw new UserFacingException($"{where}: ACL entry '{item}' names '{qualifier}' without a numeric id");
            }
            ushort tag = (tagName, qualifier.Length > 0) switch
            {
                ("u" or "user", false) => UserObj,
                ("u" or "user", true) => User,
                ("g" or "group", false) => GroupObj,
                ("g" or "group", true) => Group,
                ("m" or "mask", _) => Mask,
                ("o" or "other", _) => Other,
                _ => throw new UserFacingException($"{where}: unknown ACL tag '{tagName}'"),
            };
            if (tag is Mask or Other) id = Undefined;
            ushort perm = 0;
            foreach (char c in perms)
                perm |= c switch { 'r' => (ushort)4, 'w' => (ushort)2, 'x' => (ushort)1, '-' => (ushort)0,
                    _ => throw new UserFacingException($"{where}: bad ACL permissions '{perms}'") };
            entries.Add(new Entry(tag, perm, id));
        }
        return new PosixAcl(entries);
    }
}
