using System.Globalization;
using System.Text.RegularExpressions;

namespace RootfsExport.BlockExport;

/// <summary>
/// dm-verity through cryptsetup's veritysetup: the hash tree (with its superblock) appended after the file
/// system, so one block device (a board's /dev/nbd0) carries both and the root hash is all a board needs.
/// Salt and UUID are fixed per export, so the tree, like the file system, is reproducible.
/// </summary>
public static partial class VerityTree
{
    public static BootSpec.VerityRoot Append(string image, long filesystemBytes, string uuid, string salt)
    {
        long dataBlocks = filesystemBytes / ExportSurvey.BlockSize;
        var text = HostPrograms.Run(HostPrograms.Require("veritysetup", "cryptsetup-bin"), ["format",
            $"--data-blocks={dataBlocks}", $"--data-block-size={ExportSurvey.BlockSize}", $"--hash-block-size={ExportSurvey.BlockSize}",
            $"--hash-offset={filesystemBytes}", $"--salt={salt}", $"--uuid={uuid}", "--hash=sha256", image, image]);
        var root = RootHash().Match(text);
        if (!root.Success) throw new UserFacingException($"veritysetup format printed no root hash for {image}: {text.Trim()}");
        return new BootSpec.VerityRoot { RootHash = root.Groups[1].Value, Salt = salt, HashOffset = filesystemBytes, DataBlocks = dataBlocks };
    }

    /// <summary>veritysetup verify: true when every data block matches the tree and the root hash.</summary>
    public static bool Verify(string image, BootSpec.VerityRoot verity, out string report)
    {
        var r = Posix.ChildProcess.Capture(HostPrograms.Require("veritysetup", "cryptsetup-bin"), ["verify",
            $"--data-blocks={verity.DataBlocks}", $"--hash-offset={verity.HashOffset}", image, image, verity.RootHash], null, TimeSpan.FromMinutes(30));
        report = (r.Stdout + r.Stderr).Trim();
        return r.ExitCode == 0;
    }

    /// <summary>The device-mapper table of the verity target over one device holding data and tree.</summary>
    public static string Table(BootSpec.VerityRoot v, string device) => string.Create(CultureInfo.InvariantCulture,
        $"0 {v.DataBlocks * v.BlockSize / 512} verity 1 {device} {device} {v.BlockSize} {v.BlockSize} {v.DataBlocks} {v.HashOffset / v.BlockSize + 1} {v.Algorithm} {v.RootHash} {v.Salt}");

    [GeneratedRegex(@"Root hash:\s+([0-9a-f]+)")]
    private static partial Regex RootHash();
}
