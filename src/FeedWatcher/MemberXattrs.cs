using System.Buffers.Binary;
using System.Text;
using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// The xattrs a package member carries: in a data.tar the PAX records SCHILY.xattr.NAME (raw bytes, GNU tar and
/// OE's packaging) and LIBARCHIVE.xattr.NAME (base64, bsdtar), plus GNU tar's SCHILY.acl.* text when the binary
/// ACL is absent; in an rpm the header's FILECAPS text (%caps), which rpm turns into security.capability.
/// The tar part is the image unpacker's own reading (ExportTree.TarMemberXattrs).
/// </summary>
internal static class MemberXattrs
{
    public const string CapabilityXattr = "security.capability";

    /// <summary>xattrs of a tar member (the image unpacker's reading); an access ACL also sets the group/other permission bits.</summary>
    public static Dictionary<string, byte[]>? Of(TarMember member, string where, ref uint perms) => TarMemberXattrs.Of(member, where, ref perms);
}

/// <summary>
/// File capabilities from their text form (cap_from_text(3): "cap_net_raw=ep", "cap_net_admin,cap_net_raw+ep",
/// "= cap_sys_time+ei") to the security.capability value the kernel reads (struct vfs_cap_data, revision 2:
/// little-endian magic|flags, then permitted and inheritable in two 32-bit halves). rpm's %caps are stored as
/// text in the header and written with cap_set_file, which produces exactly this.
/// </summary>
internal static class FileCapabilities
{
    private static readonly string[] Names =
    [
        "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
        "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
        "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
        "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
        "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
        "checkpoint_restore",
    ];

    private const uint RevisionTwo = 0x02000000, EffectiveFlag = 0x1;

    /// <summary>The xattr value, or null for an empty set (rpm then sets none).</summary>
    public static byte[]? FromText(string text, string where)
    {
        ulong effective = 0, permitted = 0, inheritable = 0;
        foreach (var clause in text.Split([' ', '\t', '\n'], StringSplitOptions.RemoveEmptyEntries))
        {
            int op = clause.IndexOfAny(['=', '+', '-']);
            if (op < 0) throw new UserFacingException($"{where}: capability clause '{clause}' has no =, + or -");
            ulong caps = Set(clause[..op], where);
            int i = op;
            while (i < clause.Length)
            {
                char how = clause[i++];
                int end = clause.IndexOfAny(['=', '+', '-'], i);
                if (end < 0) end = clause.Length;
                var flags = clause[i..end];
                if (flags.Any(f => f is not ('e' or 'i' or 'p'))) throw new UserFacingException($"{where}: capability flags '{flags}' in '{clause}' (only e, i, p)");
                if (how == '=') { effective &= ~caps; permitted &= ~caps; inheritable &= ~caps; }
                foreach (var f in flags)
                {
                    if (f == 'e') effective = how == '-' ? effective & ~caps : effective | caps;
                    else if (f == 'p') permitted = how == '-' ? permitted & ~caps : permitted | caps;
                    else inheritable = how == '-' ? inheritable & ~caps : inheritable | caps;
                }
                i = end;
            }
        }
        if (permitted == 0 && inheritable == 0 && effective == 0) return null;
        var value = new byte[20];
        BinaryPrimitives.WriteUInt32LittleEndian(value, RevisionTwo | (effective != 0 ? EffectiveFlag : 0));
        BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(4), (uint)permitted);
        BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(8), (uint)inheritable);
        BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(12), (uint)(permitted >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(16), (uint)(inheritable >> 32));
        return value;
    }

    private static ulong Set(string names, string where)
    {
        if (names.Length == 0 || names.Equals("all", StringComparison.OrdinalIgnoreCase)) return (1UL << Names.Length) - 1;
        ulong caps = 0;
        foreach (var raw in names.Split(','))
        {
            var name = raw.ToLowerInvariant();
            int bit = Array.IndexOf(Names, name.StartsWith("cap_") ? name[4..] : name);
            if (bit < 0 && int.TryParse(name, out var n) && n is >= 0 and < 64) bit = n;
            if (bit < 0) throw new UserFacingException($"{where}: unknown capability '{raw}'");
            caps |= 1UL << bit;
        }
        return caps;
    }
}
