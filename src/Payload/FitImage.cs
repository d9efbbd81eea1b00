using System.Security.Cryptography;

namespace RootfsExport.Payload;

/// <summary>
/// A FIT image laid out like the kernel's scripts/make_fit.py: one kernel (kernel_noload), one fdt-N per
/// devicetree, an optional ramdisk, and conf-N per devicetree matched by its compatible list, each with the
/// ramdisk when there is one. Written with our FDT writer.
/// </summary>
public static class FitImage
{
    public sealed record Dtb(string File, byte[] Data, IReadOnlyList<string> Compatible, string Model);

    public static Dtb LoadDtb(string path)
    {
        var data = File.ReadAllBytes(path);
        FdtNode root;
        try { root = Fdt.Read(data); }
        catch (InvalidDataException e) { throw new UserFacingException($"{path}: {e.Message}"); }
        var compatible = root.GetStrings("compatible");
        if (compatible.Count == 0 || compatible[0].Length == 0) throw new UserFacingException($"{path}: the root node has no 'compatible': a FIT configuration could not be matched");
        return new Dtb(Path.GetFileName(path), data, compatible, root.GetString("model") ?? Path.GetFileNameWithoutExtension(path));
    }

    private static FdtNode Hash(FdtNode image, byte[] data) =>
        image.Child("hash-1").String("algo", "sha256").Raw("value", SHA256.HashData(data));

    public static byte[] Build(byte[] kernel, string arch, IReadOnlyList<Dtb> dtbs, byte[]? ramdisk, string description, uint timestamp = 0)
    {
        var fitArch = arch switch { "x86" => "x86_64", _ => arch };
        // U-Boot's fit_check_format requires the root timestamp; a fixed one keeps the output reproducible
        var root = new FdtNode("").String("description", description).U32("timestamp", timestamp).U32("#address-cells", 1);
        var images = root.Child("images");
        var k = images.Child("kernel").String("description", "Linux kernel").String("type", "kernel_noload").String("arch", fitArch)
            .String("os", "linux").String("compression", KernelImage.IsGzip(kernel) ? "gzip" : "none").U32("load", 0).U32("entry", 0).Raw("data", kernel);
        Hash(k, kernel);
        for (int i = 0; i < dtbs.Count; i++)
        {
            var f = images.Child($"fdt-{i + 1}").String("description", dtbs[i].File).String("type", "flat_dt").String("arch", fitArch)
                .String("compression", "none").Raw("data", dtbs[i].Data);
            Hash(f, dtbs[i].Data);
        }
        if (ramdisk != null)
        {
            var r = images.Child("ramdisk").String("description", "modules and initramfs").String("type", "ramdisk").String("arch", fitArch)
                .String("os", "linux").String("compression", "none").Raw("data", ramdisk);
            Hash(r, ramdisk);
        }
        var configs = root.Child("configurations").String("default", "conf-1");
        for (int i = 0; i < dtbs.Count; i++)
        {
            var c = configs.Child($"conf-{i + 1}").String("description", dtbs[i].Model).Strings("compatible", dtbs[i].Compatible)
                .String("kernel", "kernel").String("fdt", $"fdt-{i + 1}");
            if (ramdisk != null) c.String("ramdisk", "ramdisk");
        }
        return Fdt.Write(root);
    }

    /// <summary>Configurations of a FIT: name, description, compatible, kernel, fdt, ramdisk.</summary>
    public static IEnumerable<string> Describe(byte[] fit)
    {
        var root = Fdt.Read(fit);
        var configs = root.Find("configurations") ?? throw new InvalidDataException("no /configurations node: not a FIT image");
        yield return $"FIT: {root.GetString("description")} (default {configs.GetString("default")})";
        foreach (var c in configs.Children)
            yield return $"{c.Name}: {c.GetString("description")}; compatible {string.Join(", ", c.GetStrings("compatible"))}; " +
                         $"kernel {c.GetString("kernel")}; fdt {c.GetString("fdt")}; ramdisk {c.GetString("ramdisk") ?? "-"}";
    }
}
