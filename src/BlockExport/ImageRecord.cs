using System.Text.Json;
using System.Text.Json.Serialization;

namespace RootfsExport.BlockExport;

/// <summary>
/// What an image was built from and how, kept beside it as &lt;image&gt;.rootfs-export.json: update compares the
/// export's fingerprint with it and rebuilds the image only when they differ (or the options changed).
/// </summary>
public sealed record ImageRecord
{
    public required string Export { get; init; }
    public required string Fingerprint { get; init; }
    /// <summary>--size as given: auto or a size.</summary>
    public required string SizeSpec { get; init; }
    public required long FilesystemBytes { get; init; }
    public required long Epoch { get; init; }
    public required bool EpochFromEnvironment { get; init; }
    public required string Uuid { get; init; }
    public BootSpec.VerityRoot? Verity { get; init; }

    public static string PathFor(string image) => image + ".rootfs-export.json";

    public static ImageRecord? Read(string image)
    {
        var path = PathFor(image);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize(File.ReadAllText(path), BlockExportJson.Default.ImageRecord); }
        catch (JsonException e) { throw new UserFacingException($"{path}: not an image record ({e.Message})"); }
    }

    public void Write(string image)
    {
        var path = PathFor(image);
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(this, BlockExportJson.Default.ImageRecord) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }
}

/// <summary>
/// The images built from one export, so update knows which to refresh: &lt;export&gt;.rootfs-export-images.json beside
/// the export (not in it or its state directory, which a newer image replaces as a whole).
/// </summary>
public sealed record ImageRegistry
{
    public static string PathFor(string canonicalExport) => canonicalExport + ".rootfs-export-images.json";
    public List<string> Images { get; init; } = [];

    public static ImageRegistry Read(string canonicalExport)
    {
        var path = PathFor(canonicalExport);
        if (!File.Exists(path)) return new ImageRegistry();
        try { return JsonSerializer.Deserialize(File.ReadAllText(path), BlockExportJson.Default.ImageRegistry) ?? new ImageRegistry(); }
        catch (JsonException e) { throw new UserFacingException($"{path}: not an image list ({e.Message})"); }
    }

    public static void Add(string canonicalExport, string image)
    {
        var registry = Read(canonicalExport);
        if (registry.Images.Contains(image)) return;
        registry.Images.Add(image);
        var path = PathFor(canonicalExport);
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(registry, BlockExportJson.Default.ImageRegistry) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
    }
}

[JsonSourceGenerationOptions(WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    PropertyNamingPolicy = JsonKnownNamingPolicy.KebabCaseLower)]
[JsonSerializable(typeof(ImageRecord))]
[JsonSerializable(typeof(ImageRegistry))]
[JsonSerializable(typeof(BoardPorts))]
internal sealed partial class BlockExportJson : JsonSerializerContext;
