using RootfsExport.ExportTree;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RootfsExport.BootSpec;

/// <summary>
/// What the user asked for with <c>bootspec</c>/<c>cmdline</c>; stored in &lt;export&gt;/loader/rootfs-export.json
/// so <see cref="BootEntries.Refresh"/> can rewrite the entries after an update with the same choices.
/// </summary>
public sealed record BootSpecRequest
{
    /// <summary>nfs, tcp, usbg or virtio.</summary>
    public string Transport { get; init; } = "nfs";
    /// <summary>Server address the board dials (nfs, tcp).</summary>
    public string? Server { get; init; }
    public int? Port { get; init; }
    /// <summary>virtio mount tag.</summary>
    public string? Tag { get; init; }
    /// <summary>usbg: UDC name on the board.</summary>
    public string? Udc { get; init; }
    /// <summary>console=; null = detect from the export, "none" = no console=.</summary>
    public string? Console { get; init; }
    /// <summary>Devicetree: a name in /boot or a path inside the export; null = the only one in /boot.</summary>
    public string? Dtb { get; init; }
    /// <summary>Initramfs path inside the export; null = found in /boot.</summary>
    public string? Initrd { get; init; }
    public string? MachineId { get; init; }
    /// <summary>Machine name for the title and file name; null = the export's /etc/hostname.</summary>
    public string? Machine { get; init; }
    /// <summary>barebox <c>linux-appendroot true</c> instead of an explicit root=.</summary>
    public bool AppendRoot { get; init; }
    public string? Ip { get; init; }
    public int? Msize { get; init; }
    public int? Buflen { get; init; }
    public string? Cache { get; init; }
    public string? Access { get; init; }
    /// <summary>Extra kernel arguments.</summary>
    public string? Append { get; init; }
    /// <summary>nbd: the export name the board asks for (its board name with serve --nbd).</summary>
    public string? NbdName { get; init; }
    /// <summary>nbd: the image served; its record's root hash goes on the line when it has a verity tree.</summary>
    public string? Image { get; init; }
    /// <summary>9P (tcp, usbg): the board's name; its aname becomes &lt;export&gt;@&lt;board&gt;, the board's own copy-on-write layer.</summary>
    public string? Board { get; init; }

    public static readonly string[] Transports = ["nfs", "tcp", "usbg", "virtio", "nbd"];

    /// <summary>Builds and validates the endpoint for an export at the given absolute path.</summary>
    public RootEndpoint Endpoint(string exportPath)
    {
        if (Transport != "nbd") RequireNone(("--name", NbdName), ("--image", Image));
        if (Transport is not ("tcp" or "usbg") && Board != null)
            throw new BootSpecException("board", $"--board does not apply to --transport {Transport}: a board's own layer is served over 9P (tcp or usbg){(Transport == "nbd" ? "; an nbd board names its export with --name" : "")}");
        var aname = Board is null ? exportPath : $"{exportPath}@{Board}";
        switch (Transport)
        {
            case "nfs":
                RequireNone(("--tag", Tag), ("--udc", Udc), ("--msize", Msize), ("--buflen", Buflen), ("--cache", Cache), ("--access", Access));
                return Validated(new NfsEndpoint(ServerAddress(), exportPath, Port ?? TransportDefaults.NfsPort));
            case "tcp":
                RequireNone(("--tag", Tag), ("--udc", Udc), ("--buflen", Buflen));
                return Validated(new NinePTcpEndpoint(ServerAddress(), aname, Port ?? TransportDefaults.NinePTcpPort,
                    Msize ?? TransportDefaults.NinePMsize, Cache ?? TransportDefaults.NinePCache, Access ?? TransportDefaults.NinePAccess));
            case "usbg":
                RequireNone(("--server", Server), ("--port", Port), ("--tag", Tag), ("--cache", Cache));
                if (Udc is null) throw new BootSpecException("udc", "--udc is required for --transport usbg (the board's UDC, see /sys/class/udc there, e.g. ci_hdrc.0)");
                return Validated(new UsbgEndpoint(Udc, aname, Msize, Access ?? TransportDefaults.NinePAccess, Buflen ?? TransportDefaults.UsbgBuflen));
            case "virtio":
                RequireNone(("--server", Server), ("--port", Port), ("--udc", Udc), ("--buflen", Buflen), ("--access", Access));
                return Validated(new VirtioEndpoint(Tag ?? TransportDefaults.VirtioTag, Msize ?? TransportDefaults.NinePMsize, Cache ?? TransportDefaults.NinePCache));
            case "nbd":
                RequireNone(("--tag", Tag), ("--udc", Udc), ("--msize", Msize), ("--buflen", Buflen), ("--cache", Cache), ("--access", Access));
                return Validated(new NbdEndpoint(ServerAddress(), NbdName ?? "default", Port ?? TransportDefaults.NbdPort,
                    Image is null ? null : VerityRoot.FromImageRecord(Image)));
            default:
                throw new BootSpecException("transport", $"'{Transport}' is not one of {string.Join(", ", Transports)}");
        }
    }

    /// <summary>Command-line options; the console is taken from the export when not given.</summary>
    public CmdlineOptions CmdlineOptions(string? detectedConsole)
    {
        var console = Console switch { null => detectedConsole, "none" => null, var c => c };
        var o = new CmdlineOptions(console, Ip, ReadWrite: true, Append);
        o.Validate();
        return o;
    }

    private IPAddress ServerAddress()
    {
        if (Server is null) throw new BootSpecException("server", $"--server is required for --transport {Transport} (the address the board connects to)");
        return Check.ParseServer(Server);
    }

    private void RequireNone(params (string Option, object? Value)[] unused)
    {
        foreach (var (option, value) in unused)
            if (value is not null) throw new BootSpecException(option.TrimStart('-'), $"{option} does not apply to --transport {Transport}");
    }

    private static RootEndpoint Validated(RootEndpoint e)
    {
        e.Validate();
        return e;
    }
}

/// <summary>The entries that would be written, and the command line they carry.</summary>
public sealed record BootPlan(RootEndpoint Endpoint, string Cmdline, IReadOnlyList<BootEntry> Entries, IReadOnlyList<string> Warnings);

/// <summary>Outcome of writing entries: file names written, left as they were, and removed (only ever ours).</summary>
public sealed record BootEntriesResult(BootPlan Plan, IReadOnlyList<string> Written, IReadOnlyList<string> Unchanged, IReadOnlyList<string> Removed);

/// <summary>Writes Boot Loader Spec entries into an export and keeps them current.</summary>
public static class BootEntries
{
    public const string EntriesDirectory = "loader/entries";
    public const string SettingsFile = "loader/rootfs-export.json";


    /// <summary>Absolute export path, checked to be a directory.</summary>
    public static string ExportPath(string exportDir)
    {
        var full = Path.GetFullPath(exportDir);
        if (full.Length > 1) full = full.TrimEnd('/');
        if (!Directory.Exists(full)) throw new BootSpecException("export", $"'{exportDir}' is not a directory");
        Check.ExportPath(full, "export");
        return full;
    }

    /// <summary>The command line alone (the <c>cmdline</c> command): the export need not contain a kernel.</summary>
    public static (RootEndpoint Endpoint, string Cmdline) Cmdline(string exportDir, BootSpecRequest request)
    {
        var path = ExportPath(exportDir);
        var endpoint = request.Endpoint(path);
        using var root = new ExportRoot(path);
        var options = request.CmdlineOptions(ExportScanner.DetectConsole(root));
        return (endpoint, KernelCmdline.For(endpoint, options));
    }

    /// <summary>Finds the kernels and builds one entry per kernel release; writes nothing.</summary>
    public static BootPlan Plan(string exportDir, BootSpecRequest request)
    {
        var path = ExportPath(exportDir);
        using var export = HostDirectory.Open(path);
        return Plan(export, path, request);
    }

    private static BootPlan Plan(HostDirectory export, string path, BootSpecRequest request)
    {
        var endpoint = request.Endpoint(path);
        Check.MachineId(request.MachineId);
        using var root = new ExportRoot(export, path);
        var files = ExportScanner.Scan(root);
        var warnings = files.Warnings.ToList();
        var options = request.CmdlineOptions(files.Console);
        var cmdline = KernelCmdline.For(endpoint, options);
        var entryOptions = request.AppendRoot ? KernelCmdline.WithoutRoot(endpoint, options) : cmdline;

        if (request.AppendRoot && endpoint is NfsEndpoint nfs)
            warnings.Add($"with linux-appendroot barebox builds nfsroot= from global.linux.rootnfsopts (default v3,tcp) and adds port=/mountport= only when they were mount options; "
                         + $"the server has no portmapper, so set global.linux.rootnfsopts=v3,tcp,port={nfs.Port},mountport={nfs.Port},nolock in barebox");
        var dtb = ChooseDevicetree(root, files, request.Dtb, warnings);
        string? initrdOverride = null;
        if (request.Initrd is not null)
            initrdOverride = root.ResolveFile(request.Initrd.StartsWith('/') ? request.Initrd : "/" + request.Initrd)
                             ?? throw new BootSpecException("initrd", $"'{request.Initrd}' is not a file inside the export");

        var machine = request.Machine ?? files.Machine;
        if (machine is not null && !BlsFileName.IsValid(machine)) throw new BootSpecException("machine", $"'{machine}' may only use A-Z a-z 0-9 + - _ .");
        var title = (files.OsRelease.PrettyName ?? "Linux") + (machine is null ? "" : $" ({machine})");
        var token = request.MachineId ?? machine ?? files.OsRelease.Id ?? "linux";

        var entries = new List<BootEntry>();
        foreach (var k in files.Kernels)
        {
            var initrd = initrdOverride ?? files.InitramfsFor(k.Release);
            if (initrd is null && endpoint is UsbgEndpoint)
                warnings.Add($"no initramfs for {k.Release} in /boot: a usbg root needs one that sets up the usb9pfs gadget (e.g. rsinit)");
            entries.Add(new BootEntry
            {
                FileName = BlsFileName.For(token, k.Release),
                Title = title,
                Version = k.Release,
                MachineId = request.MachineId,
                SortKey = files.OsRelease.SortKey,
                Linux = k.Path,
                Initrd = initrd is null ? [] : [initrd],
                Devicetree = dtb,
                LinuxAppendRoot = request.AppendRoot ? true : null,
                Options = entryOptions,
                WrittenByUs = true,
            });
        }
        // Two releases that sanitise to one file name would overwrite each other.
        var clash = entries.GroupBy(e => e.FileName).FirstOrDefault(g => g.Count() > 1);
        if (clash is not null) throw new BootSpecException("version", $"kernel releases {string.Join(", ", clash.Select(e => e.Version))} map to one file name {clash.Key}");
        return new BootPlan(endpoint, cmdline, BlsEntryFormat.Sorted(entries), warnings);
    }

    private static string? ChooseDevicetree(ExportRoot root, ExportBootFiles files, string? dtb, List<string> warnings)
    {
        if (dtb is not null)
        {
            var candidates = dtb.Contains('/')
                ? [dtb.StartsWith('/') ? dtb : "/" + dtb]
                : new[] { "/boot/" + dtb, "/boot/" + dtb + ".dtb" };
            foreach (var c in candidates)
                if (root.ResolveFile(c) is { } r) return r;
            var known = files.Devicetrees.Count == 0 ? "none" : string.Join(", ", files.Devicetrees.Select(Path.GetFileName));
            throw new BootSpecException("dtb", $"'{dtb}' is not a file in the export's /boot (devicetrees there: {known})");
        }
        if (files.Devicetrees.Count == 1) return files.Devicetrees[0];
        if (files.Devicetrees.Count > 1)
            warnings.Add($"several devicetrees in /boot ({string.Join(", ", files.Devicetrees.Select(Path.GetFileName))}); no devicetree line written, choose one with --dtb");
        return null;
    }

    /// <summary>
    /// Writes the plan's entries into &lt;export&gt;/loader/entries (atomically, temp file + rename), removes our
    /// own entries that are no longer planned, never touches a file without our marker, and stores the request
    /// for <see cref="Refresh"/>. Fails before writing anything if a planned name is taken by a foreign file.
    /// </summary>
    public static BootEntriesResult Write(string exportDir, BootSpecRequest request)
    {
        var plan = Plan(exportDir, request);
        if (plan.Entries.Count == 0)
            throw new BootSpecException("export", $"no kernel found in {ExportPath(exportDir)}/boot (looked for {string.Join(", ", ExportScanner.KernelBases)} and <name>-<release>)"
                                                  + (plan.Warnings.Count > 0 ? "; " + string.Join("; ", plan.Warnings) : ""));
        var path = ExportPath(exportDir);
        using var export = HostDirectory.Open(path);
        return Apply(export, path, request, plan);
    }

    /// <summary>
    /// Rewrites the entries with the options last given to <c>bootspec</c> (for <c>update</c> after the kernel
    /// changed). Returns null when bootspec was never run on this export. When no kernel is left, our entries
    /// are removed and the result has no entries.
    /// </summary>
    public static BootEntriesResult? Refresh(string exportDir)
    {
        var path = ExportPath(exportDir);
        using var export = HostDirectory.Open(path);
        return Refresh(export, path);
    }

    /// <summary><see cref="Refresh(string)"/> for an update that holds the export: through its root, not its path.</summary>
    public static BootEntriesResult? Refresh(ExportHandle export) => Refresh(export.Root, export.Path);

    private static BootEntriesResult? Refresh(HostDirectory export, string path)
    {
        var request = LoadRequest(export, path);
        if (request is null) return null;
        return Apply(export, path, request, Plan(export, path, request));
    }

    /// <summary>The request stored by the last successful <see cref="Write"/>, or null.</summary>
    public static BootSpecRequest? LoadRequest(string exportDir)
    {
        var path = ExportPath(exportDir);
        using var export = HostDirectory.Open(path);
        return LoadRequest(export, path);
    }

    private static BootSpecRequest? LoadRequest(HostDirectory export, string path)
    {
        using var root = new ExportRoot(export, path);
        // Resolved like any other in-export path, so a symlinked loader/ cannot point us outside the export.
        var text = root.ReadText("/" + SettingsFile);
        if (text is null) return null;
        try
        {
            return JsonSerializer.Deserialize(text, BootSpecJson.Default.BootSpecRequest);
        }
        catch (JsonException e)
        {
            throw new BootSpecException("settings", $"{path}/{SettingsFile} is not valid: {e.Message}");
        }
    }

    /// <summary>The stored request's bytes (to carry over to a replacing image), read without following symlinks; null when absent.</summary>
    public static byte[]? ReadSettings(string exportDir)
    {
        using var root = HostDirectory.Open(ExportPath(exportDir));
        try { return root.ReadFileBeneath(SettingsFile, 1 << 20); }
        catch (PosixException) { return null; }
    }

    /// <summary>Puts carried-over settings back into a (new) export, through the same confined writes as the entries.</summary>
    public static void WriteSettings(string exportDir, byte[] settings)
    {
        var path = ExportPath(exportDir);
        using var export = HostDirectory.Open(path);
        using var loader = OpenOrCreate(export, "loader", $"{path}/loader");
        WriteAtomically(loader, Path.GetFileName(SettingsFile), Encoding.UTF8.GetString(settings));
    }

    private static BootEntriesResult Apply(HostDirectory export, string path, BootSpecRequest request, BootPlan plan)
    {
        // every access below is an *at() call on directories opened without following symlinks: the board
        // owns the export and may put a symlink anywhere, at any moment
        using var loader = OpenOrCreate(export, "loader", $"{path}/loader");
        bool fresh = !loader.TryStat("entries", out _);
        using var dir = OpenOrCreate(loader, "entries", $"{path}/{EntriesDirectory}");
        if (fresh && !loader.TryStat("entries.srel", out _)) WriteAtomically(loader, "entries.srel", "type1\n");
        var texts = ReadEntryFiles(dir);
        var existing = texts.ToDictionary(t => t.Key, t => BlsEntryFormat.Parse(t.Value, t.Key), StringComparer.Ordinal);
        var planned = plan.Entries.ToDictionary(e => e.FileName, StringComparer.Ordinal);

        foreach (var name in planned.Keys)
            if (existing.TryGetValue(name, out var old) && !old.WrittenByUs)
                throw new BootSpecException("entries", $"{path}/{EntriesDirectory}/{name} exists and was not written by rootfs-export; move it away or choose another --machine/--machine-id");

        var written = new List<string>();
        var unchanged = new List<string>();
        foreach (var e in plan.Entries)
        {
            var text = BlsEntryFormat.Format(e);
            if (texts.TryGetValue(e.FileName, out var current) && current == text) { unchanged.Add(e.FileName); continue; }
            WriteAtomically(dir, e.FileName, text);
            written.Add(e.FileName);
        }
        var removed = new List<string>();
        foreach (var old in existing.Values)
        {
            if (!old.WrittenByUs || planned.ContainsKey(old.FileName)) continue;
            dir.Unlink(old.FileName);
            removed.Add(old.FileName);
        }
        WriteAtomically(loader, Path.GetFileName(SettingsFile), JsonSerializer.Serialize(request, BootSpecJson.Default.BootSpecRequest) + "\n");
        return new BootEntriesResult(plan, written, unchanged, removed);
    }

    /// <summary>A directory of the export, created when missing; a symlink or file there is refused, never followed.</summary>
    private static HostDirectory OpenOrCreate(HostDirectory parent, string name, string shown)
    {
        try
        {
            if (!parent.TryStat(name, out _)) parent.CreateDirectory(name, 0x1ed);
            return parent.OpenDirectory(name);
        }
        catch (PosixException e) when (e.Errno is Errno.ELOOP or Errno.ENOTDIR)
        {
            bool link = parent.TryStat(name, out var st) && StMode.IsSymlink(st.Mode);
            throw new BootSpecException("entries", link ? $"{shown} is a symlink; refusing to write through it" : $"{shown} is not a directory");
        }
    }

    /// <summary>The *.conf regular files of loader/entries and their text (symlinks there are ignored, as before).</summary>
    private static Dictionary<string, string> ReadEntryFiles(HostDirectory dir)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in dir.ReadEntries())
        {
            if (!e.Name.EndsWith(".conf", StringComparison.Ordinal) || !dir.TryStat(e.Name, out var st) || !StMode.IsRegular(st.Mode)) continue;
            int fd;
            try { fd = dir.OpenFile(e.Name, Libc.O_RDONLY | Libc.O_NONBLOCK); }
            catch (PosixException) { continue; } // replaced by a symlink since the stat
            using var fs = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read);
            using var reader = new StreamReader(fs, Encoding.UTF8);
            result[e.Name] = reader.ReadToEnd();
        }
        return result;
    }

    private static unsafe void WriteAtomically(HostDirectory dir, string name, string text)
    {
        var tmp = $".{name}.{Environment.ProcessId}.tmp";
        var bytes = Encoding.UTF8.GetBytes(text);
        try
        {
            int fd = dir.OpenFile(tmp, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL, 0x1a4);
            try
            {
                fixed (byte* p = bytes)
                    for (int off = 0; off < bytes.Length;)
                    {
                        nint n = Libc.Write(fd, p + off, (nuint)(bytes.Length - off));
                        if (n < 0) throw PosixException.Last("write", name);
                        off += (int)n;
                    }
                if (Libc.Fsync(fd) != 0) throw PosixException.Last("fsync", name);
            }
            finally
            {
                Libc.Close(fd);
            }
            HostDirectory.Rename(dir, tmp, dir, name);
        }
        catch
        {
            try { dir.Unlink(tmp); } catch (PosixException) { }
            throw;
        }
    }
}
