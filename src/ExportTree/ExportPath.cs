namespace RootfsExport.ExportTree;

/// <summary>
/// A path inside the export, normalised and checked: relative, '/'-separated, no '.', '..' or empty
/// components. Archive entry names and package file lists go through here before anything touches disk.
/// </summary>
public readonly record struct ExportPath
{
    public string Value { get; }
    public static readonly ExportPath Root = new("");

    private ExportPath(string value) => Value = value;

    public bool IsRoot => Value.Length == 0;
    public string Name => IsRoot ? "" : Value[(Value.LastIndexOf('/') + 1)..];
    public ExportPath Parent => IsRoot ? this : new(Value.LastIndexOf('/') is var i and >= 0 ? Value[..i] : "");
    public string[] Components => IsRoot ? [] : Value.Split('/');
    public ExportPath Child(string name) => new(IsRoot ? name : Value + "/" + name);

    /// <summary>
    /// Parses an archive member name ("./usr/bin/x", "usr/bin/x/", "./"). Absolute names and names with
    /// ".." are refused: a rootfs archive never needs them and they are how archives escape the target.
    /// </summary>
    public static ExportPath Parse(string name, string what = "entry")
    {
        if (name.Contains('\0')) throw new UserFacingException($"{what} '{ArchiveText.Shown(name)}' contains a NUL byte");
        if (name.StartsWith('/')) throw new UserFacingException($"{what} '{ArchiveText.Shown(name)}' is an absolute path: it would land outside the export");
        var parts = new List<string>();
        foreach (var part in name.Split('/'))
        {
            if (part.Length == 0 || part == ".") continue;
            if (part == "..") throw new UserFacingException($"{what} '{ArchiveText.Shown(name)}' contains '..': it would land outside the export");
            parts.Add(part);
        }
        return new ExportPath(string.Join('/', parts));
    }

    /// <summary>Parses a target-absolute path ("/etc/passwd" as in .perms files and package lists).</summary>
    public static ExportPath ParseTargetAbsolute(string path, string what = "path") =>
        Parse(path.TrimStart('/'), what);

    public override string ToString() => IsRoot ? "." : Value;
}
