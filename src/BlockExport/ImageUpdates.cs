using System.Globalization;
using RootfsExport.PseudoDb;

namespace RootfsExport.BlockExport;

/// <summary>The image part of `update`: every image built from the export is rebuilt when the export changed, and only then.</summary>
public static class ImageUpdates
{
    public static void Refresh(string exportDir, TextWriter output)
    {
        // the export itself is updated by now: an image that cannot be rebuilt is reported, not a failed update
        try { RefreshImages(exportDir, output); }
        catch (UserFacingException e) { output.WriteLine($"Image: not refreshed: {e.Message}"); }
    }

    private static void RefreshImages(string exportDir, TextWriter output)
    {
        var export = ExportPaths.Canonical(exportDir);
        var state = PseudoState.ForExport(export);
        var images = ImageRegistry.Read(export).Images;
        if (images.Count == 0) return;
        string? fingerprint = null;
        foreach (var image in images)
        {
            var record = File.Exists(image) ? ImageRecord.Read(image) : null;
            if (record is null || record.Export != export) continue; // removed or rebuilt from another export: not ours to refresh
            fingerprint ??= ExportSurvey.Take(export).Fingerprint;
            if (record.Fingerprint == fingerprint)
            {
                output.WriteLine($"Image: {image} (up to date)");
                continue;
            }
            if (state.HeldByThisProcess || state.LiveServerPid() is not null)
            {
                output.WriteLine($"Image: {image} is older than the export; not rebuilt while the export is being served (pseudo cannot run beside the server): run 'rootfs-export update' or 'image' again once it stops");
                continue;
            }
            var result = Ext4Image.Build(new ImageRequest(export, image, record.SizeSpec, record.Verity is not null, EpochFromEnvironment()), output);
            output.WriteLine($"Image: {image} (rebuilt, {result.Entries} entries in {result.Elapsed.TotalSeconds:F1} s{(result.Record.Verity is { } v ? $", root hash {v.RootHash}" : "")})");
        }
    }

    /// <summary>SOURCE_DATE_EPOCH when set (reproducible builds convention), else null (the newest mtime in the export).</summary>
    public static long? EpochFromEnvironment()
    {
        var text = Environment.GetEnvironmentVariable("SOURCE_DATE_EPOCH");
        if (string.IsNullOrEmpty(text)) return null;
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var epoch))
            throw new UserFacingException($"SOURCE_DATE_EPOCH: '{text}' is not a number of seconds since 1970");
        return epoch;
    }
}
