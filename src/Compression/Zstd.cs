using System.Runtime.InteropServices;

namespace RootfsExport.Compression;

/// <summary>zstd decoding through the system's libzstd (Debian libzstd1); multi-frame streams decode as one.</summary>
public sealed unsafe partial class ZstdDecoderStream : NativeDecoderStream
{
    private const string Lib = "libzstd.so.1";

    [StructLayout(LayoutKind.Sequential)]
    private struct InBuffer { public byte* Src; public nuint Size; public nuint Pos; }

    [StructLayout(LayoutKind.Sequential)]
    private struct OutBuffer { public byte* Dst; public nuint Size; public nuint Pos; }

    [LibraryImport(Lib)] private static partial nint ZSTD_createDStream();
    [LibraryImport(Lib)] private static partial nuint ZSTD_freeDStream(nint zds);
    [LibraryImport(Lib)] private static partial nuint ZSTD_initDStream(nint zds);
    [LibraryImport(Lib)] private static partial nuint ZSTD_decompressStream(nint zds, OutBuffer* output, InBuffer* input);
    [LibraryImport(Lib)] private static partial uint ZSTD_isError(nuint code);
    [LibraryImport(Lib)] private static partial nint ZSTD_getErrorName(nuint code);

    private nint _stream;
    private bool _inFrame;

    public ZstdDecoderStream(Stream inner, bool leaveOpen = false) : base(inner, leaveOpen)
    {
        _stream = ZSTD_createDStream();
        if (_stream == 0) throw new OutOfMemoryException("ZSTD_createDStream");
        Check(ZSTD_initDStream(_stream));
    }

    protected override string Format => "zstd";

    protected override bool Decode(ReadOnlySpan<byte> input, Span<byte> output, bool inputEnded, out int consumed, out int produced)
    {
        fixed (byte* src = input)
        fixed (byte* dst = output)
        {
            var inBuf = new InBuffer { Src = src, Size = (nuint)input.Length, Pos = 0 };
            var outBuf = new OutBuffer { Dst = dst, Size = (nuint)output.Length, Pos = 0 };
            nuint hint = ZSTD_decompressStream(_stream, &outBuf, &inBuf);
            Check(hint);
            consumed = (int)inBuf.Pos;
            produced = (int)outBuf.Pos;
            if (consumed > 0 || produced > 0) _inFrame = hint != 0; // 0 = a frame is complete and flushed
            // Frames may follow each other: the data ends only where the input ends between frames.
            if (inputEnded && consumed == input.Length && produced == 0)
            {
                if (_inFrame) throw new InvalidDataException("zstd data is truncated inside a frame");
                return true;
            }
            return false;
        }
    }

    private static void Check(nuint code)
    {
        if (ZSTD_isError(code) != 0)
            throw new InvalidDataException("zstd: " + Marshal.PtrToStringUTF8(ZSTD_getErrorName(code)));
    }

    protected override void Dispose(bool disposing)
    {
        if (_stream != 0) { ZSTD_freeDStream(_stream); _stream = 0; }
        base.Dispose(disposing);
    }
}
