using System.Runtime.InteropServices;

namespace RootfsExport.Compression;

/// <summary>
/// bzip2 decoding through the system's libbz2 (Debian libbz2-1.0). pbzip2 (OE's compressor) writes many
/// concatenated bzip2 streams; each one ends with BZ_STREAM_END and the decoder is restarted for the next.
/// </summary>
public sealed unsafe partial class Bzip2DecoderStream : NativeDecoderStream
{
    private const string Lib = "libbz2.so.1.0";
    private const int BZ_OK = 0, BZ_STREAM_END = 4;

    [StructLayout(LayoutKind.Sequential)]
    private struct BzStream
    {
        public byte* NextIn; public uint AvailIn; public uint TotalInLo; public uint TotalInHi;
        public byte* NextOut; public uint AvailOut; public uint TotalOutLo; public uint TotalOutHi;
        public nint State; public nint Alloc; public nint Free; public nint Opaque;
    }

    [LibraryImport(Lib)] private static partial int BZ2_bzDecompressInit(BzStream* strm, int verbosity, int small);
    [LibraryImport(Lib)] private static partial int BZ2_bzDecompress(BzStream* strm);
    [LibraryImport(Lib)] private static partial int BZ2_bzDecompressEnd(BzStream* strm);

    // libbz2 checks that the state points back at the same bz_stream address: keep it in native memory.
    private BzStream* _strm;
    private bool _active;

    public Bzip2DecoderStream(Stream inner, bool leaveOpen = false) : base(inner, leaveOpen)
    {
        _strm = (BzStream*)NativeMemory.AllocZeroed((nuint)sizeof(BzStream));
        Start();
    }

    private void Start()
    {
        int rc = BZ2_bzDecompressInit(_strm, 0, 0);
        if (rc != BZ_OK) throw new InvalidOperationException($"BZ2_bzDecompressInit failed ({rc})");
        _active = true;
    }

    protected override string Format => "bzip2";

    protected override bool Decode(ReadOnlySpan<byte> input, Span<byte> output, bool inputEnded, out int consumed, out int produced)
    {
        consumed = produced = 0;
        if (!_active)
        {
            if (input.Length == 0 && inputEnded) return true; // clean end after a complete stream
            Start();
        }
        fixed (byte* src = input)
        fixed (byte* dst = output)
        {
            _strm->NextIn = src; _strm->AvailIn = (uint)input.Length;
            _strm->NextOut = dst; _strm->AvailOut = (uint)output.Length;
            int rc = BZ2_bzDecompress(_strm);
            consumed = input.Length - (int)_strm->AvailIn;
            produced = output.Length - (int)_strm->AvailOut;
            if (rc == BZ_STREAM_END)
            {
                BZ2_bzDecompressEnd(_strm);
                _active = false;
                return inputEnded && consumed == input.Length && produced == 0;
            }
            if (rc < 0) throw new InvalidDataException($"bzip2 data is corrupt (libbz2 error {rc})");
            if (inputEnded && consumed == input.Length && produced == 0) throw new InvalidDataException("bzip2 data is truncated");
            return false;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (_strm != null)
        {
            if (_active) BZ2_bzDecompressEnd(_strm);
            NativeMemory.Free(_strm);
            _strm = null;
        }
        base.Dispose(disposing);
    }
}
