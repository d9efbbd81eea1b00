using System.Runtime.InteropServices;

namespace RootfsExport.Compression;

/// <summary>
/// gzip decoding through the system's zlib (Debian zlib1g), members concatenated as pigz and `cat` make
/// them. After the last member only zero bytes may follow (tar's blocking padding, which GNU gzip also
/// ignores); anything else is an error: GNU tar fails on it too (gzip says "decompression OK, trailing
/// garbage ignored" and exits 2, tar stops with "Child returned status 2"). .NET's GZipStream drops such
/// junk silently, and xz and zstd here refuse it, so gzip is decoded here the same strict way.
/// </summary>
public sealed unsafe partial class GzipDecoderStream : NativeDecoderStream
{
    private const string Lib = "libz.so.1";
    private const int Z_OK = 0, Z_STREAM_END = 1, Z_BUF_ERROR = -5, Z_NO_FLUSH = 0;

    [StructLayout(LayoutKind.Sequential)]
    private struct ZStream
    {
        public byte* NextIn; public uint AvailIn; public nuint TotalIn;
        public byte* NextOut; public uint AvailOut; public nuint TotalOut;
        public nint Msg; public nint State;
        public nint ZAlloc, ZFree, Opaque;
        public int DataType; public nuint Adler; public nuint Reserved;
    }

    [LibraryImport(Lib)] private static partial int inflateInit2_(ZStream* strm, int windowBits, byte* version, int streamSize);
    [LibraryImport(Lib)] private static partial int inflate(ZStream* strm, int flush);
    [LibraryImport(Lib)] private static partial int inflateReset(ZStream* strm);
    [LibraryImport(Lib)] private static partial int inflateEnd(ZStream* strm);
    [LibraryImport(Lib)] private static partial byte* zlibVersion();

    private enum Place { InMember, BetweenMembers, InZeroPadding }

    // zlib keeps internal state tied to the struct: keep it at a fixed native address.
    private ZStream* _z;
    private Place _place = Place.InMember;

    public GzipDecoderStream(Stream inner, bool leaveOpen = false) : base(inner, leaveOpen)
    {
        _z = (ZStream*)NativeMemory.AllocZeroed((nuint)sizeof(ZStream));
        int rc = inflateInit2_(_z, 15 + 16, zlibVersion(), sizeof(ZStream)); // 15 + 16: a gzip wrapper, 32 KiB window
        if (rc != Z_OK) throw new InvalidOperationException($"inflateInit2 failed ({rc})");
    }

    protected override string Format => "gzip";

    protected override bool Decode(ReadOnlySpan<byte> input, Span<byte> output, bool inputEnded, out int consumed, out int produced)
    {
        consumed = produced = 0;
        while (true)
        {
            switch (_place)
            {
                case Place.InMember:
                    int rc = Inflate(input[consumed..], output[produced..], out int used, out int made);
                    consumed += used;
                    produced += made;
                    if (rc == Z_STREAM_END) { _place = Place.BetweenMembers; continue; }
                    if (rc is not (Z_OK or Z_BUF_ERROR)) throw new InvalidDataException($"gzip data is corrupt ({Message(rc)})");
                    if (inputEnded && consumed == input.Length && made == 0) throw new InvalidDataException("gzip data is truncated inside a member");
                    return false;
                case Place.BetweenMembers:
                    if (consumed == input.Length) return inputEnded;
                    if (input[consumed] == 0x1f) { inflateReset(_z); _place = Place.InMember; continue; } // zlib checks the rest of the header
                    if (input[consumed] != 0) throw TrailingGarbage(consumed);
                    _place = Place.InZeroPadding;
                    continue;
                default:
                    while (consumed < input.Length && input[consumed] == 0) consumed++;
                    if (consumed < input.Length) throw TrailingGarbage(consumed);
                    return inputEnded;
            }
        }
    }

    private int Inflate(ReadOnlySpan<byte> input, Span<byte> output, out int used, out int made)
    {
        fixed (byte* src = input)
        fixed (byte* dst = output)
        {
            _z->NextIn = src; _z->AvailIn = (uint)input.Length;
            _z->NextOut = dst; _z->AvailOut = (uint)output.Length;
            int rc = inflate(_z, Z_NO_FLUSH);
            used = input.Length - (int)_z->AvailIn;
            made = output.Length - (int)_z->AvailOut;
            return rc;
        }
    }

    private string Message(int rc) => _z->Msg != 0 ? Marshal.PtrToStringUTF8(_z->Msg)! : $"zlib error {rc}";

    private InvalidDataException TrailingGarbage(int at) =>
        new($"gzip: trailing garbage after the compressed data at byte {CompressedPosition + at} of the file " +
            "(GNU tar refuses such a file too: gzip reports 'trailing garbage ignored' and exits with status 2)");

    protected override void Dispose(bool disposing)
    {
        if (_z != null) { inflateEnd(_z); NativeMemory.Free(_z); _z = null; }
        base.Dispose(disposing);
    }
}
