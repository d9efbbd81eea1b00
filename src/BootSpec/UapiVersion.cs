namespace RootfsExport.BootSpec;

/// <summary>
/// Version comparison of the UAPI Version Format Specification (what the Boot Loader Spec sorts by).
/// The spec's numbered steps and its examples disagree in places (its step order would sort 1.0~rc1 above
/// 1.0); this follows systemd's strverscmp_improved(), the reference implementation, which
/// <c>systemd-analyze compare-versions</c> exposes and the tests compare against: '~' is checked before
/// the end of a string, a numeric segment beats a missing one, and '^' loses against any other character.
/// </summary>
public sealed class UapiVersion : IComparer<string?>
{
    public static readonly UapiVersion Comparer = new();

    int IComparer<string?>.Compare(string? x, string? y) => Compare(x, y);

    private static bool IsValid(char c) => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '~' or '^';

    public static int Compare(string? a, string? b)
    {
        a ??= "";
        b ??= "";
        int i = 0, j = 0;
        while (true)
        {
            // characters outside the version alphabet are separators only
            while (i < a.Length && !IsValid(a[i])) i++;
            while (j < b.Length && !IsValid(b[j])) j++;
            // '~' (pre-release) sorts lower than anything, even the end of the other string
            if (At(a, i) == '~' || At(b, j) == '~')
            {
                if (At(a, i) != '~') return 1;
                if (At(b, j) != '~') return -1;
                i++; j++;
            }
            // one string ended: the longer one is newer
            if (i >= a.Length || j >= b.Length) return EndOrder(a, i, b, j);
            // '-' (version-release separator) sorts lower
            if (a[i] == '-' || b[j] == '-')
            {
                if (a[i] != '-') return 1;
                if (b[j] != '-') return -1;
                i++; j++;
            }
            // '^' (patched release): systemd sorts it lower than another character here (the spec's text
            // says higher); it still sorts above the end of a string, by the length rule above
            if (At(a, i) == '^' || At(b, j) == '^')
            {
                if (At(a, i) != '^') return 1;
                if (At(b, j) != '^') return -1;
                i++; j++;
            }
            // '.' sorts lower
            if (At(a, i) == '.' || At(b, j) == '.')
            {
                if (At(a, i) != '.') return 1;
                if (At(b, j) != '.') return -1;
                i++; j++;
            }
            int si = i, sj = j;
            if (char.IsAsciiDigit(At(a, i)) || char.IsAsciiDigit(At(b, j)))
            {
                while (i < a.Length && char.IsAsciiDigit(a[i])) i++;
                while (j < b.Length && char.IsAsciiDigit(b[j])) j++;
                // a number is newer than no number
                if ((i > si) != (j > sj)) return i > si ? 1 : -1;
                int c = CompareNumbers(a.AsSpan(si, i - si), b.AsSpan(sj, j - sj));
                if (c != 0) return c;
            }
            else
            {
                while (i < a.Length && char.IsAsciiLetter(a[i])) i++;
                while (j < b.Length && char.IsAsciiLetter(b[j])) j++;
                if ((i > si) != (j > sj)) return i > si ? 1 : -1;
                // letter by letter, ordinal ('A' < 'a'); then the longer run is newer
                int c = Math.Sign(a.AsSpan(si, Math.Min(i - si, j - sj)).SequenceCompareTo(b.AsSpan(sj, Math.Min(i - si, j - sj))));
                if (c != 0) return c;
                if (i - si != j - sj) return i - si > j - sj ? 1 : -1;
            }
        }
    }

    private static char At(string s, int i) => i < s.Length ? s[i] : '\0';

    private static int EndOrder(string a, int i, string b, int j)
    {
        bool ea = i >= a.Length, eb = j >= b.Length;
        return ea && eb ? 0 : ea ? -1 : 1;
    }

    private static int CompareNumbers(ReadOnlySpan<char> x, ReadOnlySpan<char> y)
    {
        x = x.TrimStart('0');
        y = y.TrimStart('0');
        if (x.Length != y.Length) return x.Length < y.Length ? -1 : 1;
        int c = x.SequenceCompareTo(y);
        return Math.Sign(c);
    }
}
