using System.Text;

namespace RootfsExport.ExportTree;

public static class TarMemberXattrs
{
    /// <summary>
    /// xattrs of a member from its PAX records: SCHILY.xattr.NAME (raw bytes), LIBARCHIVE.xattr.NAME
    /// (base64, bsdtar), SCHILY.acl.access/default (GNU tar --acls text, used only when the binary
    /// system.posix_acl_* record is absent: the text may name users of the build host). ACLs follow pseudo:
    /// an access ACL also sets the group/other permission bits. Image members and package members alike.
    /// </summary>
    public static Dictionary<string, byte[]>? Of(TarMember member, string where, ref uint perms)
    {
        if (member.Pax.Count == 0) return null;
        Dictionary<string, byte[]>? result = null;
        PosixAcl? access = null, @default = null;
        foreach (var (key, value) in member.Pax)
        {
            if (key.StartsWith("SCHILY.xattr.", StringComparison.Ordinal))
            {
                var name = key["SCHILY.xattr.".Length..];
                if (name == PosixAcl.AccessXattr) access = PosixAcl.FromXattr(value, where);
                else if (name == PosixAcl.DefaultXattr) @default = PosixAcl.FromXattr(value, where);
                else (result ??= new())[name] = value;
            }
            else if (key.StartsWith("LIBARCHIVE.xattr.", StringComparison.Ordinal))
            {
                var name = Uri.UnescapeDataString(key["LIBARCHIVE.xattr.".Length..]);
                byte[] decoded;
                try { decoded = Convert.FromBase64String(Encoding.ASCII.GetString(value)); }
                catch (FormatException) { throw new UserFacingException($"{where}: {key} is not base64"); }
                (result ??= new())[name] = decoded;
            }
        }
        if (access is null && member.Pax.TryGetValue("SCHILY.acl.access", out var accessText))
            access = PosixAcl.FromText(Encoding.UTF8.GetString(accessText), where);
        if (@default is null && member.Pax.TryGetValue("SCHILY.acl.default", out var defaultText))
            @default = PosixAcl.FromText(Encoding.UTF8.GetString(defaultText), where);
        if (access is { Entries.Count: > 0 })
        {
            perms = (perms & ~0x1ffu) | access.PermissionBits();
            if (access.IsExtended) (result ??= new())[PosixAcl.AccessXattr] = access.ToXattr();
        }
        if (@default is { Entries.Count: > 0 }) (result ??= new())[PosixAcl.DefaultXattr] = @default.ToXattr();
        return result;
    }
}
