using System.IO.Compression;
using System.Text;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.Payload;

/// <summary>
/// `payload modules`: lib/modules/&lt;release&gt; as a newc cpio a bootloader appends to the initramfs
/// (rsinit binds it over the rootfs's modules). Owner 0:0, modes 0644/0755 whatever make modules_install
/// left (it installs -rw-------), split debug info and the build/source links into the kernel tree left out,
/// sorted and with a fixed mtime so the same modules give the same bytes.
/// </summary>
public static class ModulesPayload
{
    /// <summary>
    /// The modules directory: lib/modules or usr/lib/modules (merged /usr) below the given root. Looked up
    /// without following any symlink (a merged-/usr `lib -> usr/lib` is found as usr/lib/modules): the root may
    /// be an export a board writes to, and a planted symlink must not make us pack the host's files.
    /// </summary>
    public static (string Dir, string Prefix, string Release) Locate(string root, string? release)
    {
        using var rootDir = HostDirectory.Open(root);
        foreach (var prefix in new[] { "lib/modules", "usr/lib/modules" })
        {
            var dir = Path.Combine(root, prefix);
            int fd = rootDir.TryOpenBeneath(prefix, Libc.O_RDONLY | Libc.O_DIRECTORY);
            if (fd < 0) continue;
            List<string> releases;
            using (var modules = HostDirectory.FromFd(fd))
                releases = modules.ReadEntries().Where(e => modules.TryStat(e.Name, out var st) && StMode.IsDirectory(st.Mode))
                    .Select(e => e.Name).Order(StringComparer.Ordinal).ToList();
            if (release != null)
            {
                if (!releases.Contains(release)) throw new UserFacingException($"{dir} has no '{release}' (it has: {string.Join(", ", releases)})");
                return (Path.Combine(dir, release), prefix, release);
            }
            if (releases.Count == 1) return (Path.Combine(dir, releases[0]), prefix, releases[0]);
            if (releases.Count > 1) throw new UserFacingException($"{dir} has several kernel releases ({string.Join(", ", releases)}): pass --release");
        }
        throw new UserFacingException($"no modules in '{root}': expected lib/modules/<release> or usr/lib/modules/<release> (for a kernel build, run make modules_install INSTALL_MOD_PATH=<dir> and pass <dir>)");
    }

    private static bool Excluded(string relative)
    {
        var name = Path.GetFileName(relative);
        return relative is "build" or "source" || name.EndsWith(".dwo") || name.EndsWith(".debug") || relative.Split('/').Contains(".debug");
    }

    private enum Kind { Directory, File, Symlink }

    public static void Write(string root, string? release, string output, string? append, long mtime)
    {
        var (_, prefix, found) = Locate(root, release);
        using var rootDir = HostDirectory.Open(root);
        using var modules = rootDir.OpenDirectoryBeneath(prefix + "/" + found);
        var entries = new List<(string Rel, Kind Kind, string? Link)>();
        Collect(modules, "", entries);
        entries.Sort((a, b) => string.CompareOrdinal(a.Rel, b.Rel));

        using var file = new FileStream(output + ".tmp", FileMode.Create, FileAccess.Write);
        if (append != null)
        {
            if (!File.Exists(append)) throw new UserFacingException($"--append '{append}' does not exist");
            using var a = File.OpenRead(append);
            a.CopyTo(file); // the kernel unpacks concatenated (separately compressed) cpio archives in turn
        }
        Stream target = output.EndsWith(".gz") ? new GZipStream(file, CompressionLevel.SmallestSize, leaveOpen: true) : file;
        var cpio = new CpioNewcWriter(target);
        var parts = prefix.Split('/');
        for (int i = 1; i <= parts.Length; i++) cpio.Directory(string.Join('/', parts[..i]), 0x1ed, mtime);
        var releaseDir = prefix + "/" + found;
        cpio.Directory(releaseDir, 0x1ed, mtime);
        foreach (var (rel, kind, link) in entries)
        {
            if (Excluded(rel)) continue;
            var name = releaseDir + "/" + rel;
            if (kind == Kind.Symlink) cpio.Symlink(name, link!, mtime);
            else if (kind == Kind.Directory) cpio.Directory(name, 0x1ed, mtime);
            else cpio.File(name, 0x1a4, mtime, modules.ReadFileBeneath(rel));
        }
        cpio.Finish();
        if (target != file) target.Dispose();
        file.Dispose();
        File.Move(output + ".tmp", output, overwrite: true);
    }

    /// <summary>Every directory, regular file and symlink below dir (symlinks as themselves, never followed).</summary>
    private static void Collect(HostDirectory dir, string rel, List<(string Rel, Kind Kind, string? Link)> into)
    {
        foreach (var e in dir.ReadEntries())
        {
            var childRel = rel.Length == 0 ? e.Name : rel + "/" + e.Name;
            if (!dir.TryStat(e.Name, out var st)) continue;
            if (StMode.IsSymlink(st.Mode)) into.Add((childRel, Kind.Symlink, dir.ReadLink(e.Name)));
            else if (StMode.IsRegular(st.Mode)) into.Add((childRel, Kind.File, null));
            else if (StMode.IsDirectory(st.Mode))
            {
                into.Add((childRel, Kind.Directory, null));
                if (Excluded(childRel)) continue;
                using var sub = dir.OpenDirectory(e.Name);
                Collect(sub, childRel, into);
            }
        }
    }
}

/// <summary>What a kernel image says about itself: architecture (from its header) and release (its banner).</summary>
public static class KernelImage
{
    public static byte[] Load(string path)
    {
        if (!File.Exists(path)) throw new UserFacingException($"kernel '{path}' does not exist");
        return File.ReadAllBytes(path);
    }

    public static bool IsGzip(byte[] data) => data.Length > 2 && data[0] == 0x1f && data[1] == 0x8b;

    public static byte[] Uncompressed(byte[] data)
    {
        if (!IsGzip(data)) return data;
        using var gz = new GZipStream(new MemoryStream(data), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        gz.CopyTo(ms);
        return ms.ToArray();
    }

    /// <summary>arm64 Image ("ARM\x64" at 0x38), arm zImage (0x016f2818 at 0x24), x86 bzImage ("HdrS" at 0x202).</summary>
    public static string? Arch(byte[] raw)
    {
        if (raw.Length > 0x3c && raw[0x38] == 'A' && raw[0x39] == 'R' && raw[0x3a] == 'M' && raw[0x3b] == 0x64) return "arm64";
        if (raw.Length > 0x28 && BitConverter.ToUInt32(raw, 0x24) == 0x016f2818) return "arm";
        if (raw.Length > 0x206 && Encoding.ASCII.GetString(raw, 0x202, 4) == "HdrS") return "x86";
        return null;
    }

    /// <summary>The release from "Linux version &lt;release&gt; " (uncompressed Image) or bzImage's kernel_version field.</summary>
    public static string? Release(byte[] raw) => Release(new MemoryStream(raw, writable: false));

    /// <summary>How far into an image the banner is looked for (an uncompressed arm64 Image is ~40 MB).</summary>
    private const long MaxBannerScan = 96L << 20;

    /// <summary>
    /// The release compiled into an image: x86 bzImage's setup header points at it (0x20E), an uncompressed
    /// Image carries "Linux version &lt;release&gt; " in its data. Compressed images yield null. Streams: the
    /// banner is searched in 1 MiB chunks, never reading more than <see cref="MaxBannerScan"/>.
    /// </summary>
    public static string? Release(Stream image)
    {
        var head = new byte[0x210];
        if (image.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) == head.Length && Encoding.ASCII.GetString(head, 0x202, 4) == "HdrS")
        {
            int off = head[0x20E] | head[0x20F] << 8;
            if (off != 0 && off + 0x200 < image.Length)
            {
                image.Position = off + 0x200;
                var buf = new byte[128];
                int n = image.ReadAtLeast(buf, buf.Length, throwOnEndOfStream: false);
                var token = Encoding.ASCII.GetString(buf, 0, n).Split(' ', '\0')[0];
                if (token.Length > 0 && char.IsAsciiDigit(token[0])) return token;
            }
        }
        image.Position = 0;
        return BannerRelease(image);
    }

    private static string? BannerRelease(Stream image)
    {
        var needle = "Linux version "u8.ToArray();
        var chunk = new byte[1 << 20];
        long scanned = 0;
        int carry = 0;
        while (scanned < MaxBannerScan)
        {
            int n = image.Read(chunk, carry, chunk.Length - carry);
            int len = carry + n;
            scanned += n;
            int at = chunk.AsSpan(0, len).IndexOf(needle);
            if (at >= 0)
            {
                var after = chunk.AsSpan(at + needle.Length, len - at - needle.Length);
                int end = after.IndexOfAny((byte)' ', (byte)0, (byte)'\n');
                if (end >= 0 || n == 0)
                {
                    var token = Encoding.ASCII.GetString(end >= 0 ? after[..end] : after);
                    return token.Length is > 0 and < 128 && char.IsAsciiDigit(token[0]) ? token : null;
                }
                // the release runs past this chunk: move the match to the front and read on
                carry = len - at;
                Array.Copy(chunk, at, chunk, 0, carry);
                if (carry > 4096) return null;
                continue;
            }
            if (n == 0) break;
            // keep a tail so a needle split across chunks is still found
            carry = Math.Min(len, needle.Length - 1);
            Array.Copy(chunk, len - carry, chunk, 0, carry);
        }
        return null;
    }
}
