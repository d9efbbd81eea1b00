using System.CommandLine;
using RootfsExport.Payload;

namespace RootfsExport.Cli;

/// <summary>payload modules|fit|inspect: netboot a new kernel against an unchanged rootfs.</summary>
public static class PayloadCommands
{
    public static IEnumerable<Command> Create()
    {
        var payload = new Command("payload", "Kernel-only netboot payloads: a modules cpio and a FIT image");
        payload.Subcommands.Add(Modules());
        payload.Subcommands.Add(Fit());
        payload.Subcommands.Add(Inspect());
        yield return payload;
    }

    private static Command Modules()
    {
        var root = new Argument<DirectoryInfo>("source") { Description = "export or modules_install staging dir (INSTALL_MOD_PATH)" };
        var output = new Option<FileInfo>("-o", "--output") { Description = "output: modules.cpio or modules.cpio.gz", Required = true };
        var append = new Option<FileInfo?>("--append") { Description = "initramfs (cpio[.gz]) to put first; the kernel unpacks concatenated cpios" };
        var release = new Option<string?>("--release") { Description = "kernel release when there are several" };
        var modules = new Command("modules", "lib/modules/<release> as a reproducible newc cpio (0:0, readable modes, no split debug)") { root, output, append, release };
        modules.SetAction(p =>
        {
            long mtime = long.TryParse(Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH"), out var e) ? e : 0;
            ModulesPayload.Write(p.GetValue(root)!.FullName, p.GetValue(release), p.GetValue(output)!.FullName, p.GetValue(append)?.FullName, mtime);
            Console.WriteLine($"wrote {p.GetValue(output)!.FullName}");
            return 0;
        });
        return modules;
    }

    private static Command Fit()
    {
        var kernel = new Option<FileInfo>("--kernel") { Description = "Image, Image.gz, zImage or bzImage", Required = true };
        var dtbDir = new Option<DirectoryInfo>("--dtb-dir") { Description = "directory with the .dtb files (searched recursively)", Required = true };
        var ramdisk = new Option<FileInfo?>("--ramdisk") { Description = "ramdisk for every configuration (e.g. the modules cpio)" };
        var arch = new Option<string?>("--arch") { Description = "arm64, arm or x86 (default: from the kernel header)" };
        var modulesFrom = new Option<DirectoryInfo?>("--modules") { Description = "check the kernel's release against lib/modules here" };
        var force = new Option<bool>("--force") { Description = "build even when kernel and modules releases differ" };
        var fitOut = new Option<FileInfo>("-o", "--output") { Description = "output image.fit", Required = true };
        var fit = new Command("fit", "A FIT image like the kernel's make image.fit: kernel, every DTB, configurations matched by compatible") { kernel, dtbDir, ramdisk, arch, modulesFrom, force, fitOut };
        fit.SetAction(p =>
        {
            var image = KernelImage.Load(p.GetValue(kernel)!.FullName);
            var raw = KernelImage.Uncompressed(image);
            var a = p.GetValue(arch) ?? KernelImage.Arch(raw) ?? throw new UserFacingException($"{p.GetValue(kernel)!.Name}: not a kernel image I recognise; pass --arch");
            if (p.GetValue(modulesFrom) is { } m && KernelImage.Release(raw) is { } kernelRelease)
            {
                var (_, _, modRelease) = ModulesPayload.Locate(m.FullName, null);
                if (modRelease != kernelRelease && !p.GetValue(force))
                    throw new UserFacingException($"release mismatch: the kernel is {kernelRelease}, the modules are {modRelease} (--force to build anyway)");
            }
            var dir = p.GetValue(dtbDir)!;
            if (!dir.Exists) throw new UserFacingException($"--dtb-dir '{dir.FullName}' does not exist");
            var dtbs = dir.EnumerateFiles("*.dtb", SearchOption.AllDirectories).OrderBy(f => f.FullName, StringComparer.Ordinal)
                .Select(f => FitImage.LoadDtb(f.FullName)).ToList();
            if (dtbs.Count == 0) throw new UserFacingException($"no .dtb files in {dir.FullName}");
            var rd = p.GetValue(ramdisk) is { } r ? File.ReadAllBytes(r.FullName) : null;
            uint stamp = uint.TryParse(Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH"), out var sde) ? sde : 0;
            var blob = FitImage.Build(image, a, dtbs, rd, $"Linux {KernelImage.Release(raw) ?? ""} netboot payload".Replace("  ", " "), stamp);
            File.WriteAllBytes(p.GetValue(fitOut)!.FullName, blob);
            Console.WriteLine($"wrote {p.GetValue(fitOut)!.FullName}: {dtbs.Count} configuration(s), arch {a}{(rd != null ? ", with ramdisk" : "")}");
            return 0;
        });
        return fit;
    }

    private static Command Inspect()
    {
        var fitFile = new Argument<FileInfo>("image") { Description = "a FIT image" };
        var inspect = new Command("inspect", "List a FIT image's configurations") { fitFile };
        inspect.SetAction(p =>
        {
            var file = p.GetValue(fitFile)!;
            if (!file.Exists) throw new UserFacingException($"'{file.FullName}' does not exist");
            try { foreach (var line in FitImage.Describe(File.ReadAllBytes(file.FullName))) Console.WriteLine(line); }
            catch (InvalidDataException e) { throw new UserFacingException($"{file.Name}: {e.Message}"); }
            return 0;
        });
        return inspect;
    }
}
