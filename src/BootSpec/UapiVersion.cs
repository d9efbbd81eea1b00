namespace RootfsExport.BootSpec;

/// <summary>
/// Version comparison of the UAPI Version Format Specification (what the Boot Loader Spec sorts by),
/// following the numbered steps of its text. Where its examples disagree with the steps
/// (<c>0 &lt; ~</c>), the steps win: '~' sorts lower than anything but the end of the string.
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
            // 1. skip characters outside the version alphabet
            while (i < a.Length && !IsValid(a[i])) i++;
            while (j < b.Length && !IsValid(b[j])) j++;
            // 2. end of either string
            if (i >= a.Length || j >= b.Length) return EndOrder(a, i, b, j);
            // 3. '~' sorts lower
            if (a[i] == '~' || b[j] == '~')
            {
                if (a[i] != '~') return 1;
                if (b[j] != '~') return -1;
                i++; j++;
            }
            // 4. end check again
            if (i >= a.Length || j >= b.Length) return EndOrder(a, i, b, j);
            // 5. '-' sorts lower
            if (a[i] == '-' || b[j] == '-')
            {
                if (a[i] != '-') return 1;
                if (b[j] != '-') return -1;
                i++; j++;
            }
            // 6. '^' sorts higher
            if (At(a, i) == '^' || At(b, j) == '^')
            {
                if (At(a, i) != '^') return -1;
                if (At(b, j) != '^') return 1;
                i++; j++;
            }
            // 6'. '.' sorts lower
            if (At(a, i) == '.' || At(b, j) == '.')
            {
                if (At(a, i) != '.') return 1;
                if (At(b, j) != '.') return -1;
                i++; j++;
            }
            // 7. numerical prefixes
            if (char.IsAsciiDigit(At(a, i)) || char.IsAsciiDigit(At(b, j)))
            {
                int si = i, sj = j;
                while (i < a.Length && char.IsAsciiDigit(a[i])) i++;
                while (j < b.Length && char.IsAsciiDigit(b[j])) j++;
                int c = CompareNumbers(a.AsSpan(si, i - si), b.AsSpan(sj, j - sj));
                if (c != 0) return c;
                continue;
            }
            // 8. alphabetical prefixes, letter by letter (ordinal: 'A' < 'a')
            while (true)
            {
                bool la = char.IsAsciiLetter(At(a, i)), lb = char.IsAsciiLetter(At(b, j));
                if (!la || !lb)
                {
                    if (la) return 1;
                    if (lb) return -1;
                    break;
                }
                if (a[i] != b[j]) return a[i] < b[j] ? -1 : 1;
                i++; j++;
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
