namespace RootfsExport.FeedWatcher;

/// <summary>
/// A Debian/opkg package version "[epoch:]upstream[-revision]" ordered as dpkg's verrevcmp (opkg uses the
/// same): '~' sorts before everything, even the end; digit runs compare numerically; letters before others.
/// </summary>
public sealed record PackageVersion(long Epoch, string Upstream, string Revision) : IComparable<PackageVersion>
{
    public static PackageVersion Parse(string text)
    {
        text = text.Trim();
        long epoch = 0;
        int colon = text.IndexOf(':');
        if (colon > 0 && long.TryParse(text[..colon], out var e)) { epoch = e; text = text[(colon + 1)..]; }
        int dash = text.LastIndexOf('-');
        return dash > 0 ? new PackageVersion(epoch, text[..dash], text[(dash + 1)..]) : new PackageVersion(epoch, text, "");
    }

    public int CompareTo(PackageVersion? other)
    {
        if (other is null) return 1;
        int c = Epoch.CompareTo(other.Epoch);
        if (c != 0) return c;
        c = VerRevCmp(Upstream, other.Upstream);
        return c != 0 ? c : VerRevCmp(Revision, other.Revision);
    }

    public static int Compare(string a, string b) => Parse(a).CompareTo(Parse(b));

    private static int Order(char c) =>
        char.IsAsciiDigit(c) ? 0 : char.IsAsciiLetter(c) ? c : c == '~' ? -1 : c + 256;

    private static int VerRevCmp(string a, string b)
    {
        int i = 0, j = 0;
        while (i < a.Length || j < b.Length)
        {
            int firstDiff = 0;
            while ((i < a.Length && !char.IsAsciiDigit(a[i])) || (j < b.Length && !char.IsAsciiDigit(b[j])))
            {
                int ac = i < a.Length ? Order(a[i]) : 0;
                int bc = j < b.Length ? Order(b[j]) : 0;
                if (ac != bc) return ac - bc;
                i++; j++;
            }
            while (i < a.Length && a[i] == '0') i++;
            while (j < b.Length && b[j] == '0') j++;
            while (i < a.Length && char.IsAsciiDigit(a[i]) && j < b.Length && char.IsAsciiDigit(b[j]))
            {
                if (firstDiff == 0) firstDiff = a[i] - b[j];
                i++; j++;
            }
            if (i < a.Length && char.IsAsciiDigit(a[i])) return 1;
            if (j < b.Length && char.IsAsciiDigit(b[j])) return -1;
            if (firstDiff != 0) return firstDiff;
        }
        return 0;
    }

    public override string ToString() => (Epoch > 0 ? $"{Epoch}:" : "") + Upstream + (Revision.Length > 0 ? "-" + Revision : "");
}
