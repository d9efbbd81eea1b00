using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.InteropServices.Marshalling;
using System.Text;
using System.Text.Unicode;

namespace RootfsExport.Posix;

/// <summary>
/// File names are bytes on Linux; ours are strings. A name that is UTF-8 is its text; every byte of a name
/// that is not UTF-8 becomes the lone surrogate U+DC80..U+DCFF (the "surrogateescape" Python uses), so
/// 'a\xff' and 'a\xfe' stay two names and every *at() call gets the same bytes back (FileNameMarshaller).
/// Code that stores names elsewhere (files.db, a cpio) checks <see cref="IsRaw"/> first.
/// </summary>
public static class FileName
{
    private const char First = '\uDC80', Last = '\uDCFF';

    public static string Decode(ReadOnlySpan<byte> bytes)
    {
        if (Utf8.IsValid(bytes)) return Encoding.UTF8.GetString(bytes);
        var sb = new StringBuilder(bytes.Length);
        for (int i = 0; i < bytes.Length;)
        {
            if (Rune.DecodeFromUtf8(bytes[i..], out var rune, out int used) == System.Buffers.OperationStatus.Done)
            {
                sb.Append(rune.ToString());
                i += used;
            }
            else sb.Append((char)(0xDC00 + bytes[i++]));
        }
        return sb.ToString();
    }

    /// <summary>Whether the name holds bytes that are not UTF-8 (escaped as U+DC80..U+DCFF).</summary>
    public static bool IsRaw(string name) => name.AsSpan().IndexOfAnyInRange(First, Last) >= 0;

    public static int MaxByteCount(string name) => Encoding.UTF8.GetMaxByteCount(name.Length);

    /// <summary>The name's bytes into dest (large enough: MaxByteCount); returns the count.</summary>
    public static int Encode(string name, Span<byte> dest)
    {
        if (!IsRaw(name)) return Encoding.UTF8.GetBytes(name, dest);
        int n = 0;
        for (int i = 0; i < name.Length;)
        {
            if (Rune.DecodeFromUtf16(name.AsSpan(i), out var rune, out int used) == System.Buffers.OperationStatus.Done)
            {
                n += rune.EncodeToUtf8(dest[n..]);
                i += used;
            }
            else if (name[i] is >= First and <= Last) dest[n++] = (byte)(name[i++] - 0xDC00);
            else { n += Rune.ReplacementChar.EncodeToUtf8(dest[n..]); i++; }
        }
        return n;
    }

    public static byte[] ToBytes(string name)
    {
        var buf = new byte[MaxByteCount(name)];
        return buf[..Encode(name, buf)];
    }

    /// <summary>The name for an error line: escaped bytes shown as \xNN.</summary>
    public static string Shown(string name)
    {
        if (!IsRaw(name)) return name;
        var sb = new StringBuilder(name.Length + 8);
        foreach (var c in name) sb.Append(c is >= First and <= Last ? $"\\x{c - 0xDC00:x2}" : c.ToString());
        return sb.ToString();
    }
}

/// <summary>Marshals a string path argument to the NUL-terminated bytes <see cref="FileName"/> says it stands for.</summary>
[CustomMarshaller(typeof(string), MarshalMode.ManagedToUnmanagedIn, typeof(ManagedToUnmanagedIn))]
public static unsafe class FileNameMarshaller
{
    public ref struct ManagedToUnmanagedIn
    {
        public static int BufferSize => 0x100;
        private byte* _heap;
        private byte* _pointer;

        public void FromManaged(string? name, Span<byte> buffer)
        {
            if (name is null) { _pointer = null; return; }
            int max = FileName.MaxByteCount(name) + 1;
            if (max > buffer.Length)
            {
                _heap = (byte*)NativeMemory.Alloc((nuint)max);
                buffer = new Span<byte>(_heap, max);
            }
            int n = FileName.Encode(name, buffer);
            buffer[n] = 0;
            _pointer = (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference(buffer));
        }

        public readonly byte* ToUnmanaged() => _pointer;

        public readonly void Free()
        {
            if (_heap != null) NativeMemory.Free(_heap);
        }
    }
}
