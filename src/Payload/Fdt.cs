using System.Buffers.Binary;
using System.Text;

namespace RootfsExport.Payload;

/// <summary>A devicetree node: properties in order (raw big-endian values) and child nodes.</summary>
public sealed class FdtNode(string name)
{
    public string Name { get; } = name;
    public List<KeyValuePair<string, byte[]>> Properties { get; } = new();
    public List<FdtNode> Children { get; } = new();

    public FdtNode Child(string name)
    {
        var c = new FdtNode(name);
        Children.Add(c);
        return c;
    }

    public FdtNode? Find(string name) => Children.FirstOrDefault(c => c.Name == name);
    public byte[]? Get(string prop) => Properties.FirstOrDefault(p => p.Key == prop).Value;

    public FdtNode String(string prop, string value) => Raw(prop, Encoding.UTF8.GetBytes(value + "\0"));
    public FdtNode Strings(string prop, IEnumerable<string> values) => Raw(prop, Encoding.UTF8.GetBytes(string.Concat(values.Select(v => v + "\0"))));

    public FdtNode U32(string prop, uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return Raw(prop, b);
    }

    public FdtNode Raw(string prop, byte[] value)
    {
        Properties.Add(new(prop, value));
        return this;
    }

    /// <summary>A string-list property ("compatible") decoded.</summary>
    public IReadOnlyList<string> GetStrings(string prop) =>
        Get(prop) is { } v ? Encoding.UTF8.GetString(v).TrimEnd('\0').Split('\0') : [];

    public string? GetString(string prop) => GetStrings(prop).FirstOrDefault();
}

/// <summary>
/// Flattened devicetree (DTB) writer and reader: header version 17 (last compatible 16), an empty memory
/// reservation map, the structure block (BEGIN_NODE/PROP/END_NODE/END tokens) and a de-duplicated strings
/// block, all big-endian. Pure: a node tree in, bytes out, and back.
/// </summary>
public static class Fdt
{
    public const uint Magic = 0xd00dfeed;
    private const uint BeginNode = 1, EndNode = 2, Prop = 3, Nop = 4, End = 9;

    public static byte[] Write(FdtNode root)
    {
        var strings = new MemoryStream();
        var offsets = new Dictionary<string, int>(StringComparer.Ordinal);
        var structure = new MemoryStream();
        void U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32BigEndian(b, v); structure.Write(b); }
        void Pad() { while (structure.Length % 4 != 0) structure.WriteByte(0); }
        int NameOffset(string name)
        {
            if (offsets.TryGetValue(name, out var off)) return off;
            off = (int)strings.Length;
            strings.Write(Encoding.UTF8.GetBytes(name + "\0"));
            offsets[name] = off;
            return off;
        }
        void Node(FdtNode n)
        {
            U32(BeginNode);
            structure.Write(Encoding.UTF8.GetBytes(n.Name + "\0"));
            Pad();
            foreach (var (k, v) in n.Properties)
            {
                U32(Prop);
                U32((uint)v.Length);
                U32((uint)NameOffset(k));
                structure.Write(v);
                Pad();
            }
            foreach (var c in n.Children) Node(c);
            U32(EndNode);
        }
        Node(root);
        U32(End);

        const int headerSize = 40, rsvmapOff = 40, rsvmapSize = 16;
        int structOff = rsvmapOff + rsvmapSize;
        int stringsOff = structOff + (int)structure.Length;
        int total = stringsOff + (int)strings.Length;
        var blob = new byte[total];
        var h = blob.AsSpan();
        uint[] header = [Magic, (uint)total, (uint)structOff, (uint)stringsOff, (uint)rsvmapOff, 17, 16, 0, (uint)strings.Length, (uint)structure.Length];
        for (int i = 0; i < header.Length; i++) BinaryPrimitives.WriteUInt32BigEndian(h[(i * 4)..], header[i]);
        _ = headerSize;
        structure.ToArray().CopyTo(blob, structOff);
        strings.ToArray().CopyTo(blob, stringsOff);
        return blob;
    }

    public static bool LooksLikeFdt(ReadOnlySpan<byte> data) => data.Length >= 40 && BinaryPrimitives.ReadUInt32BigEndian(data) == Magic;

    /// <summary>Parses a DTB; throws InvalidDataException naming what is wrong.</summary>
    public static FdtNode Read(ReadOnlySpan<byte> blob)
    {
        if (!LooksLikeFdt(blob)) throw new InvalidDataException("not a flattened devicetree (no d00dfeed magic)");
        uint total = BinaryPrimitives.ReadUInt32BigEndian(blob[4..]);
        uint structOff = BinaryPrimitives.ReadUInt32BigEndian(blob[8..]);
        uint stringsOff = BinaryPrimitives.ReadUInt32BigEndian(blob[12..]);
        uint version = BinaryPrimitives.ReadUInt32BigEndian(blob[20..]);
        if (total > blob.Length || structOff >= total || stringsOff > total || version < 16)
            throw new InvalidDataException($"devicetree header is inconsistent (size {total}, version {version})");
        int pos = (int)structOff;
        uint Next(ReadOnlySpan<byte> b)
        {
            if (pos + 4 > total) throw new InvalidDataException("devicetree structure block runs past the end");
            uint v = BinaryPrimitives.ReadUInt32BigEndian(b[pos..]);
            pos += 4;
            return v;
        }
        string CStr(ReadOnlySpan<byte> b, int at)
        {
            int end = b[at..].IndexOf((byte)0);
            if (end < 0) throw new InvalidDataException("unterminated string in devicetree");
            return Encoding.UTF8.GetString(b.Slice(at, end));
        }
        var stack = new Stack<FdtNode>();
        FdtNode? root = null;
        while (true)
        {
            uint token = Next(blob);
            switch (token)
            {
                case BeginNode:
                    var name = CStr(blob, pos);
                    pos = (pos + Encoding.UTF8.GetByteCount(name) + 1 + 3) & ~3;
                    var node = new FdtNode(name);
                    if (stack.Count > 0) stack.Peek().Children.Add(node);
                    else if (root is null) root = node;
                    else throw new InvalidDataException("devicetree has two root nodes");
                    stack.Push(node);
                    break;
                case Prop:
                    uint len = Next(blob), nameOff = Next(blob);
                    if (stack.Count == 0 || pos + len > total) throw new InvalidDataException("devicetree property outside a node or past the end");
                    stack.Peek().Properties.Add(new(CStr(blob, (int)(stringsOff + nameOff)), blob.Slice(pos, (int)len).ToArray()));
                    pos = (int)((pos + len + 3) & ~3u);
                    break;
                case EndNode:
                    if (stack.Count == 0) throw new InvalidDataException("unbalanced END_NODE in devicetree");
                    stack.Pop();
                    break;
                case Nop:
                    break;
                case End:
                    return stack.Count == 0 && root != null ? root : throw new InvalidDataException("devicetree ends inside a node");
                default:
                    throw new InvalidDataException($"unknown devicetree token {token:x} at byte {pos - 4}");
            }
        }
    }
}
