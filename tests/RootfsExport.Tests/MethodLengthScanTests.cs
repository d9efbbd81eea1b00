using System.Text;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// The project's rule: no method over 60 lines. A source scan of every .cs file below src/ (generated code under
/// obj/ and bin/ excepted): comments and string or char literals are blanked, then braces are counted. A block
/// opened directly inside a type (class, struct, record, interface) whose header is not itself a type or a field
/// initializer is a member body (method, constructor, operator, property or indexer); its length runs from the
/// first line of its header (attributes left out) to its closing brace. Local functions and lambdas count as part
/// of the method holding them.
/// </summary>
public sealed class MethodLengthScanTests
{
    private const int MaxLines = 60;

    [Fact]
    public void No_method_in_src_is_over_60_lines()
    {
        var found = new List<string>();
        foreach (var file in Directory.EnumerateFiles(Path.Combine(Repository.Root, "src"), "*.cs", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(Repository.Root, file);
            if (rel.Contains("/obj/") || rel.Contains("/bin/") || rel.EndsWith(".g.cs")) continue;
            foreach (var (name, line, lines) in MemberLengths(File.ReadAllText(file)))
                if (lines > MaxLines) found.Add($"{rel}:{line} {name}: {lines} lines");
        }
        Assert.True(found.Count == 0, $"methods over {MaxLines} lines:\n  " + string.Join("\n  ", found));
    }

    [Fact]
    public void The_scan_measures_members_and_not_their_inner_blocks()
    {
        var body = string.Concat(Enumerable.Repeat("        if (x) { y(\"}\"); } // }\n", 61));
        var source = "namespace N;\n[Attr]\npublic class C\n{\n    [Fact]\n    public void Long(int a = 1)\n    {\n" + body + "    }\n"
                     + "    private static readonly int[] Table = new int[]\n    {\n" + string.Concat(Enumerable.Repeat("        1,\n", 70)) + "    };\n"
                     + "    private sealed record R(int A)\n    {\n        public int B { get { return A; } }\n    }\n    int Short() { return $\"{(A ? \"}\" : '{')}\".Length; }\n}\n";
        var members = MemberLengths(source).ToList();
        Assert.Equal([("Long", 6, 64), ("B", 145, 1), ("Short", 147, 1)], members);
    }

    /// <summary>(name, first line, lines) of every member body in a C# source.</summary>
    private static IEnumerable<(string Name, int Line, int Lines)> MemberLengths(string source)
    {
        var code = Blank(source);
        var lineStarts = new List<int> { 0 };
        for (int i = 0; i < code.Length; i++) if (code[i] == '\n') lineStarts.Add(i + 1);
        int LineOf(int pos) { int l = lineStarts.BinarySearch(pos); return (l >= 0 ? l : ~l - 1) + 1; }

        // each open block: whether it is a type's body, and where a member body began (-1: not a member)
        var blocks = new Stack<(bool IsType, int MemberStart, string Name)>();
        int headerStart = 0;
        var members = new List<(string, int, int)>();
        for (int i = 0; i < code.Length; i++)
        {
            char c = code[i];
            if (c == '{')
            {
                bool inType = blocks.Count == 0 || blocks.Peek().IsType;
                var header = code[headerStart..i];
                if (inType && IsTypeHeader(header)) blocks.Push((true, -1, ""));
                else if (inType && MemberName(header) is { } name)
                    blocks.Push((false, headerStart + LeadingAttributesLength(header), name));
                else blocks.Push((false, -1, ""));
                headerStart = i + 1;
            }
            else if (c == '}')
            {
                if (blocks.Count > 0 && blocks.Pop() is { MemberStart: >= 0 } m)
                    members.Add((m.Name, LineOf(m.MemberStart), LineOf(i) - LineOf(m.MemberStart) + 1));
                headerStart = i + 1;
            }
            else if (c == ';') headerStart = i + 1;
        }
        foreach (var (name, start, lines) in members.OrderBy(m => m.Item2)) yield return (name, start, lines);
    }

    private static readonly string[] TypeKeywords = ["class", "struct", "record", "interface", "enum", "namespace"];
    private static readonly string[] Statements = ["if", "else", "for", "foreach", "while", "do", "switch", "using", "lock", "try", "catch", "finally", "fixed", "unsafe", "checked", "unchecked"];

    private static bool IsTypeHeader(string header)
    {
        var words = Words(StripAttributes(header));
        int paren = header.IndexOf('(');
        // "record R(int A)": the keyword comes before any parameter list
        return words.Any(w => TypeKeywords.Contains(w)) && (paren < 0 || TypeKeywords.Any(k => IndexOfWord(header, k) is >= 0 and var at && at < paren));
    }

    /// <summary>The member's name, or null when the block is a field initializer, a statement or an anonymous block.</summary>
    private static string? MemberName(string header)
    {
        var h = StripAttributes(header).Trim();
        if (h.Length == 0) return null;
        if (Statements.Contains(Words(h).FirstOrDefault())) return null;
        int depth = 0;
        foreach (var ch in h) // '=' outside parentheses: a field or property initializer, not a body
        {
            if (ch is '(' or '[' or '<') depth++;
            else if (ch is ')' or ']' or '>') depth--;
            else if (ch == '=' && depth == 0) return null;
        }
        int paren = h.IndexOf('(');
        var beforeParams = paren >= 0 ? h[..paren] : h;
        return Words(beforeParams).LastOrDefault(w => w != "get" && w != "set" && w != "init") ?? h;
    }

    private static int IndexOfWord(string text, string word)
    {
        for (int at = text.IndexOf(word, StringComparison.Ordinal); at >= 0; at = text.IndexOf(word, at + 1, StringComparison.Ordinal))
            if ((at == 0 || !IsWordChar(text[at - 1])) && (at + word.Length == text.Length || !IsWordChar(text[at + word.Length]))) return at;
        return -1;
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';

    private static string[] Words(string text) =>
        new string(text.Select(c => IsWordChar(c) ? c : ' ').ToArray()).Split(' ', StringSplitOptions.RemoveEmptyEntries);

    private static string StripAttributes(string header) => header[LeadingAttributesLength(header)..];

    /// <summary>Leading white space and [attribute] groups of a header: the member starts after them.</summary>
    private static int LeadingAttributesLength(string header)
    {
        int i = 0;
        while (true)
        {
            while (i < header.Length && char.IsWhiteSpace(header[i])) i++;
            if (i >= header.Length || header[i] != '[') return i;
            int depth = 0;
            for (; i < header.Length; i++)
            {
                if (header[i] == '[') depth++;
                else if (header[i] == ']' && --depth == 0) { i++; break; }
            }
        }
    }

    /// <summary>The source with comments and the contents of string and char literals replaced by spaces (line breaks kept).</summary>
    private static string Blank(string s)
    {
        var o = new StringBuilder(s);
        int i = 0;
        void Space(int from, int to) { for (int k = from; k < to && k < s.Length; k++) if (s[k] != '\n') o[k] = ' '; }
        while (i < s.Length)
        {
            if (s[i] == '/' && i + 1 < s.Length && s[i + 1] == '/')
            {
                int end = s.IndexOf('\n', i); end = end < 0 ? s.Length : end;
                Space(i, end); i = end;
            }
            else if (s[i] == '/' && i + 1 < s.Length && s[i + 1] == '*')
            {
                int end = s.IndexOf("*/", i + 2, StringComparison.Ordinal); end = end < 0 ? s.Length : end + 2;
                Space(i, end); i = end;
            }
            else if (s[i] == '\'')
            {
                int j = i + 1;
                while (j < s.Length && s[j] != '\'' && s[j] != '\n') j += s[j] == '\\' ? 2 : 1;
                Space(i, j + 1); i = j + 1;
            }
            else if (s[i] is '"' or '@' or '$' && StringLiteralEnd(s, i) is var end and > 0)
            {
                Space(i, end); i = end;
            }
            else i++;
        }
        return o.ToString();
    }

    /// <summary>The end of a string literal starting at i (regular, verbatim, interpolated or raw), or 0 when none starts there.</summary>
    private static int StringLiteralEnd(string s, int i)
    {
        int j = i;
        bool verbatim = false;
        bool interpolated = false;
        while (j < s.Length && s[j] is '@' or '$') { verbatim |= s[j] == '@'; interpolated |= s[j] == '$'; j++; }
        if (j >= s.Length || s[j] != '"') return 0;
        if (j > i && !s[i..j].All(ch => ch is '@' or '$')) return 0;
        int quotes = 0;
        while (j + quotes < s.Length && s[j + quotes] == '"') quotes++;
        if (quotes >= 3) // raw string: ends at the same run of quotes
        {
            int end = s.IndexOf(new string('"', quotes), j + quotes, StringComparison.Ordinal);
            return end < 0 ? s.Length : end + quotes;
        }
        for (int k = j + 1; k < s.Length; k++)
        {
            if (!verbatim && s[k] == '\\') { k++; continue; }
            if (interpolated && s[k] == '{')
            {
                if (k + 1 < s.Length && s[k + 1] == '{') { k++; continue; }
                k = HoleEnd(s, k + 1) - 1;
                continue;
            }
            if (s[k] != '"') continue;
            if (verbatim && k + 1 < s.Length && s[k + 1] == '"') { k++; continue; }
            return k + 1;
        }
        return s.Length;
    }

    /// <summary>The position after the '}' closing an interpolation hole that starts at i (strings inside it skipped).</summary>
    private static int HoleEnd(string s, int i)
    {
        for (int depth = 0; i < s.Length; i++)
        {
            if (s[i] == '\'')
                for (i++; i < s.Length && s[i] != '\''; i++) { if (s[i] == '\\') i++; }
            else if (s[i] is '"' or '@' or '$' && StringLiteralEnd(s, i) is var end and > 0) i = end - 1;
            else if (s[i] == '{') depth++;
            else if (s[i] == '}' && depth-- == 0) return i + 1;
        }
        return s.Length;
    }
}
