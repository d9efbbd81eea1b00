using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;

namespace RootfsExport.BootSpec;

/// <summary>
/// dm-verity parameters of an image whose hash tree (superblock first) follows the file system on the same
/// device. Written by `rootfs-export image --verity` into &lt;image&gt;.rootfs-export.json under "verity".
/// </summary>
public sealed partial record VerityRoot
{
    public required string RootHash { get; init; }
    public required string Salt { get; init; }
    /// <summary>Byte offset of the hash tree = the file system's size.</summary>
    public required long HashOffset { get; init; }
    public required long DataBlocks { get; init; }
    public int BlockSize { get; init; } = 4096;
    public string Algorithm { get; init; } = "sha256";

    public void Validate()
    {
        if (!Hex().IsMatch(RootHash)) throw new BootSpecException("roothash", $"'{RootHash}' is not a hexadecimal hash");
        if (!Hex().IsMatch(Salt)) throw new BootSpecException("salt", $"'{Salt}' is not hexadecimal");
        if (HashOffset <= 0 || HashOffset % BlockSize != 0) throw new BootSpecException("hash-offset", $"{HashOffset} is not a positive multiple of {BlockSize}");
    }

    /// <summary>The "verity" member of an image's record, or null when the image has no hash tree.</summary>
    public static VerityRoot? FromImageRecord(string image)
    {
        var path = image + ".rootfs-export.json";
        if (!File.Exists(path)) throw new BootSpecException("image", $"{path} not found: build the image with 'rootfs-export image'");
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            return doc.RootElement.TryGetProperty("verity", out var v) ? v.Deserialize(VerityJson.Default.VerityRoot) : null;
        }
        catch (JsonException e) { throw new BootSpecException("image", $"{path}: {e.Message}"); }
    }

    [GeneratedRegex("^[0-9a-f]{2,128}$")]
    private static partial Regex Hex();
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower)]
[JsonSerializable(typeof(VerityRoot))]
public sealed partial class VerityJson : JsonSerializerContext;

/// <summary>
/// An ext4 image over NBD, in the syntax of Debian/Ubuntu nbd-client's initramfs script:
/// <c>root=/dev/nbd0 nbdroot=HOST:PORT/NAME</c> (it runs <c>nbd-client HOST -N NAME PORT /dev/nbd0</c>). With dm-verity
/// the root is systemd-veritysetup-generator's <c>/dev/mapper/root</c> over the same device, read-only.
/// </summary>
public sealed partial record NbdEndpoint(IPAddress Host, string Name, int Port = TransportDefaults.NbdPort, VerityRoot? Verity = null) : RootEndpoint
{
    public const string Device = "/dev/nbd0";

    public override string Transport => "nbd";

    public override void Validate()
    {
        Check.Server(Host);
        Check.Port(Port);
        if (!ExportName().IsMatch(Name)) throw new BootSpecException("name", $"'{Name}' is not an NBD export name (1-64 of A-Z a-z 0-9 _ . @ + -)");
        Verity?.Validate();
    }

    /// <summary>HOST:PORT/NAME.</summary>
    public string NbdRoot
    {
        get
        {
            Validate();
            return $"{Host}:{Port}/{Name}";
        }
    }

    public IReadOnlyList<string> RootArguments() => Verity is not { } v
        ? [$"root={Device}", $"nbdroot={NbdRoot}"]
        : [$"nbddev={Device}", $"nbdroot={NbdRoot}", "root=/dev/mapper/root", $"roothash={v.RootHash}",
           $"systemd.verity_root_data={Device}", $"systemd.verity_root_hash={Device}", $"systemd.verity_root_options=hash-offset={v.HashOffset}"];

    [GeneratedRegex(@"^[A-Za-z0-9_.@+-]{1,64}$")]
    private static partial Regex ExportName();
}
