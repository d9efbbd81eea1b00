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
            if (SortsLower('~', a, ref i, b, ref j) is not 0 and var tilde) return tilde;
            // one string ended: the longer one is newer
            if (i >= a.Length || j >= b.Length) return EndOrder(a, i, b, j);
            // '-' (version-release separator) sorts lower
            if (SortsLower('-', a, ref i, b, ref j) is not 0 and var dash) return dash;
            // '^' (patched release): systemd sorts it lower than another character here (the spec's text
            // says higher); it still sorts above the end of a string, by the length rule above
            if (SortsLower('^', a, ref i, b, ref j) is not 0 and var caret) return caret;
            // '.' sorts lower
            if (SortsLower('.', a, ref i, b, ref j) is not 0 and var dot) return dot;
            if (CompareSegment(a, ref i, b, ref j) is not 0 and var segment) return segment;
        }
    }

    /// <summary>
    /// A marker that sorts below everything else: the side without it at this point is newer (1 or -1); when both
    /// have it, both step past it (0), as when neither has it.
    /// </summary>
    private static int SortsLower(char marker, string a, ref int i, string b, ref int j)
    {
        bool ma = At(a, i) == marker, mb = At(b, j) == marker;
        if (!ma && !mb) return 0;
        if (!ma) return 1;
        if (!mb) return -1;
        i++; j++;
        return 0;
    }

    /// <summary>The next run of digits (numerically) or of letters (ordinally, 'A' &lt; 'a'; then the longer run is newer).</summary>
    private static int CompareSegment(string a, ref int i, string b, ref int j)
    {
        int si = i, sj = j;
        bool digits = char.IsAsciiDigit(At(a, i)) || char.IsAsciiDigit(At(b, j));
        Func<char, bool> inRun = digits ? char.IsAsciiDigit : char.IsAsciiLetter;
        while (i < a.Length && inRun(a[i])) i++;
        while (j < b.Length && inRun(b[j])) j++;
        // a segment is newer than none
        if ((i > si) != (j > sj)) return i > si ? 1 : -1;
        if (digits) return CompareNumbers(a.AsSpan(si, i - si), b.AsSpan(sj, j - sj));
        int common = Math.Min(i - si, j - sj);
        int c = Math.Sign(a.AsSpan(si, common).SequenceCompareTo(b.AsSpan(sj, common)));
        if (c != 0) return c;
        return i - si == j - sj ? 0 : i - si > j - sj ? 1 : -1;
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
