using System.Text;

namespace RootfsExport.ExportTree;

/// <summary>
/// Names from an archive as they may appear in an error line: printable (control characters, NUL and
/// bytes that are not UTF-8 escaped as \0 / \xNN), and short (a long name keeps its start and its end, the
/// middle is elided with its length), so one bad entry gives one short line, not a megabyte of terminal.
/// </summary>
public static class ArchiveText
{
    private const int Keep = 100;

    public static string Shown(string name)
    {
        var sb = new StringBuilder(Math.Min(name.Length, 4 * Keep) + 16);
        foreach (var rune in name.EnumerateRunes()) Append(sb, rune);
        return Elide(sb.ToString());
    }

    public static string Shown(ReadOnlySpan<byte> name)
    {
        var sb = new StringBuilder(Math.Min(name.Length, 4 * Keep) + 16);
        for (int i = 0; i < name.Length;)
        {
            if (Rune.DecodeFromUtf8(name[i..], out var rune, out int used) == System.Buffers.OperationStatus.Done)
            {
                Append(sb, rune);
                i += used;
            }
            else sb.Append($"\\x{name[i++]:x2}");
        }
        return Elide(sb.ToString());
    }

    private static void Append(StringBuilder sb, Rune rune)
    {
        if (rune.Value == 0) sb.Append("\\0");
        else if (Rune.IsControl(rune) || rune == Rune.ReplacementChar) sb.Append(rune.Value < 0x100 ? $"\\x{rune.Value:x2}" : $"\\u{rune.Value:x4}");
        else sb.Append(rune.ToString());
    }

    private static string Elide(string s) =>
        s.Length <= 2 * Keep + 40 ? s : $"{s[..Keep]}...({s.Length - 2 * Keep} characters elided)...{s[^Keep..]}";
}
