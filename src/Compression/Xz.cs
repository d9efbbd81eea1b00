using System.Runtime.InteropServices;

namespace RootfsExport.Compression;

/// <summary>xz decoding through the system's liblzma (Debian liblzma5), concatenated streams included.</summary>
public sealed unsafe partial class XzDecoderStream : NativeDecoderStream
{
    private const string Lib = "liblzma.so.5";
    private const uint LZMA_CONCATENATED = 0x08;
    private const int LZMA_RUN = 0, LZMA_FINISH = 3;
    private const int LZMA_OK = 0, LZMA_STREAM_END = 1, LZMA_BUF_ERROR = 10;

    [StructLayout(LayoutKind.Sequential)]
    private struct LzmaStream
    {
        public byte* NextIn; public nuint AvailIn; public ulong TotalIn;
        public byte* NextOut; public nuint AvailOut; public ulong TotalOut;
        public nint Allocator; public nint Internal;
        public nint R1, R2, R3, R4;
        public ulong RInt1, RInt2;
        public nuint RInt3, RInt4;
        public int REnum1, REnum2;
    }

    [LibraryImport(Lib)] private static partial int lzma_stream_decoder(LzmaStream* strm, ulong memlimit, uint flags);
    [LibraryImport(Lib)] private static partial int lzma_code(LzmaStream* strm, int action);
    [LibraryImport(Lib)] private static partial void lzma_end(LzmaStream* strm);

    // liblzma keeps internal state tied to the struct: keep it at a fixed native address.
    private LzmaStream* _strm;

    public XzDecoderStream(Stream inner, bool leaveOpen = false) : base(inner, leaveOpen)
    {
        _strm = (LzmaStream*)NativeMemory.AllocZeroed((nuint)sizeof(LzmaStream));
        int rc = lzma_stream_decoder(_strm, ulong.MaxValue, LZMA_CONCATENATED);
        if (rc != LZMA_OK) throw new InvalidOperationException($"lzma_stream_decoder failed ({rc})");
    }

    protected override string Format => "xz";

    protected override bool Decode(ReadOnlySpan<byte> input, Span<byte> output, bool inputEnded, out int consumed, out int produced)
    {
        fixed (byte* src = input)
        fixed (byte* dst = output)
        {
            _strm->NextIn = src; _strm->AvailIn = (nuint)input.Length;
            _strm->NextOut = dst; _strm->AvailOut = (nuint)output.Length;
            int rc = lzma_code(_strm, inputEnded ? LZMA_FINISH : LZMA_RUN);
            consumed = input.Length - (int)_strm->AvailIn;
            produced = output.Length - (int)_strm->AvailOut;
            if (rc == LZMA_STREAM_END) return true;
            if (rc == LZMA_OK) return false;
            if (rc == LZMA_BUF_ERROR && inputEnded) throw new InvalidDataException("xz data is truncated");
            if (rc == LZMA_BUF_ERROR) return false;
            throw new InvalidDataException(rc switch
            {
                7 => "xz: not an xz stream",
                8 => "xz: unsupported options",
                9 => "xz data is corrupt",
                _ => $"xz: decoder error {rc}",
            });
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (_strm != null) { lzma_end(_strm); NativeMemory.Free(_strm); _strm = null; }
        base.Dispose(disposing);
    }
}
