using FsCheck;
using FsCheck.Fluent;
using RootfsExport.NineP.Protocol;
using Xunit;

namespace RootfsExport.NineP.Tests;

public class CodecTests
{
    private static readonly Qid Q = new(QidType.Dir, 7, 0x1122334455667788);

    /// <summary>One sample of every message of 9P2000.L, both directions.</summary>
    public static readonly Message[] Samples =
    [
        new Rlerror(2),
        new Tversion(131096, "9P2000.L"), new Rversion(65536, "9P2000.L"),
        new Tauth(P9.NoFid, "", "/srv/rootfs", 1000), new Rauth(Q),
        new Tattach(0, P9.NoFid, "root", "/srv/rootfs", P9.NoUname), new Rattach(Q),
        new Tflush(3), new Rflush(),
        new Twalk(0, 1, ["etc", "..", "hostname"]), new Rwalk([Q, Q with { Type = QidType.File }]),
        new Twalk(0, 1, []), new Rwalk([]),
        new Tread(1, 1UL << 40, 65512), new Rread(new byte[] { 1, 2, 3 }),
        new Twrite(1, 5, "hello"u8.ToArray()), new Rwrite(5),
        new Tclunk(1), new Rclunk(), new Tremove(1), new Rremove(),
        new Tstatfs(0), new Rstatfs(0x01021994, 4096, 1000, 500, 400, 100, 50, 0xdeadbeef, 255),
        new Tlopen(1, 0x8002), new Rlopen(Q, 0),
        new Tlcreate(1, "new file", 0x8042, 0x1a4, 42), new Rlcreate(Q, 0),
        new Tsymlink(1, "sh", "busybox", 0), new Rsymlink(Q),
        new Tmknod(1, "console", 0x2180, 5, 1, 0), new Rmknod(Q),
        new Trename(1, 2, "b"), new Rrename(),
        new Treadlink(1), new Rreadlink("/bin/busybox"),
        new Tgetattr(1, (AttrMask)0x17ff),
        new Rgetattr(new Attributes(AttrMask.Basic, Q, 0x41ed, 0, 42, 3, 259, 4096, 4096, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)),
        new Tsetattr(1, (SetAttrMask)0x46, 0, 1234, 5678, 0, 0, 0, 0, 0), new Rsetattr(),
        new Txattrwalk(1, 2, "security.capability"), new Rxattrwalk(20),
        new Txattrcreate(1, "user.x", 3, 1), new Rxattrcreate(),
        new Treaddir(1, 0, 65512), new Rreaddir(new byte[] { 9, 9 }),
        new Tfsync(1, 1), new Rfsync(),
        new Tlock(1, LockValues.WriteLock, 1, 0, 0, 77, "board"), new Rlock(LockValues.Success),
        new Tgetlock(1, LockValues.ReadLock, 0, 10, 77, "board"), new Rgetlock(LockValues.Unlock, 0, 10, 77, "board"),
        new Tlink(1, 2, "hard"), new Rlink(),
        new Tmkdir(1, "d", 0x41ed, 0), new Rmkdir(Q),
        new Trenameat(1, "a", 2, "b"), new Rrenameat(),
        new Tunlinkat(1, "d", 0x200), new Runlinkat(),
    ];

    [Fact]
    public void Every_message_type_has_a_sample()
    {
        var covered = Samples.Select(s => s.Type).ToHashSet();
        foreach (var t in Enum.GetValues<MessageType>().Where(t => t != MessageType.Tlerror))
            Assert.Contains(t, covered);
    }

    [Fact]
    public void Every_sample_round_trips_byte_for_byte()
    {
        foreach (var m in Samples)
        {
            var bytes = Codec.Encode(0x1234, m);
            Assert.Equal(bytes.Length, Codec.Measure(m));
            Assert.Equal(DecodeError.None, Codec.TryDecode(bytes, out var tag, out var back));
            Assert.Equal(0x1234, tag);
            Assert.Equal(m.Type, back!.Type);
            Assert.Equal(bytes, Codec.Encode(0x1234, back));
            if (m is not (Twalk or Rwalk or Rread or Twrite or Rreaddir)) Assert.Equal(m, back); // records with arrays compare by reference
        }
    }

    [Fact]
    public void Wire_layout_matches_the_protocol()
    {
        // Tversion tag NOTAG msize 131096 "9P2000.L" as Linux sends it
        Assert.Equal(Convert.FromHexString("1500000064FFFF18000200080039503230303" + "02E4C"),
            Codec.Encode(P9.NoTag, new Tversion(131096, "9P2000.L")));
        // Rlerror ENOENT
        Assert.Equal(Convert.FromHexString("0B0000000701000200" + "0000"), Codec.Encode(1, new Rlerror(2)));
    }

    [Fact]
    public void Truncated_or_padded_frames_are_errors_not_exceptions()
    {
        foreach (var m in Samples)
        {
            var bytes = Codec.Encode(9, m);
            for (int len = 0; len < bytes.Length; len++)
            {
                var cut = bytes[..len];
                Assert.NotEqual(DecodeError.None, Codec.TryDecode(cut, out _, out _));
                // with the size field fixed up, a short body is malformed
                if (len >= 7)
                {
                    BitConverter.TryWriteBytes(cut.AsSpan(0, 4), (uint)len);
                    var err = Codec.TryDecode(cut, out var tag, out var msg);
                    if (err == DecodeError.None) Assert.Fail($"{m.Type} truncated to {len} decoded as {msg}");
                    Assert.Equal(9, tag);
                }
            }
            var padded = bytes.Concat(new byte[] { 0 }).ToArray();
            BitConverter.TryWriteBytes(padded.AsSpan(0, 4), (uint)padded.Length);
            Assert.Equal(DecodeError.Malformed, Codec.TryDecode(padded, out _, out _));
        }
    }

    [Fact]
    public void Unknown_types_and_overlong_walks_are_reported()
    {
        var legacyTopen = new byte[] { 12, 0, 0, 0, 112, 1, 0, 0, 0, 0, 0, 0 };
        Assert.Equal(DecodeError.UnknownType, Codec.TryDecode(legacyTopen, out var tag, out _));
        Assert.Equal(1, tag);
        var walk17 = Codec.Encode(1, new Twalk(0, 1, Enumerable.Repeat("a", 16).ToArray()));
        walk17[15] = 17; // nwname
        Assert.Equal(DecodeError.Malformed, Codec.TryDecode(walk17, out _, out _));
    }

    [Fact]
    public void Property_random_fields_round_trip()
    {
        Check.QuickThrowOnFailure(Prop.ForAll<uint, ulong, string>((fid, offset, name) =>
        {
            uint count = (uint)(offset >> 7) ^ fid;
            name ??= "";
            name = name.Replace('\0', 'x');
            foreach (var m in new Message[]
                     {
                         new Tread(fid, offset, count), new Tgetattr(fid, (AttrMask)offset), new Tlcreate(fid, name, count, count, fid),
                         new Txattrwalk(fid, count, name), new Twalk(fid, count, [name, name]), new Rreadlink(name),
                         new Tsetattr(fid, (SetAttrMask)count, count, fid, count, offset, offset, offset, offset, offset),
                     })
            {
                var bytes = Codec.Encode(7, m);
                if (Codec.TryDecode(bytes, out var tag, out var back) != DecodeError.None || tag != 7) return false;
                if (!bytes.AsSpan().SequenceEqual(Codec.Encode(7, back!))) return false;
            }
            return true;
        }));
    }

    [Fact]
    public void Property_random_bytes_never_throw()
    {
        Check.QuickThrowOnFailure(Prop.ForAll<byte[], byte>((body, type) =>
        {
            body ??= [];
            var frame = new byte[7 + body.Length];
            BitConverter.TryWriteBytes(frame.AsSpan(0, 4), (uint)frame.Length);
            frame[4] = type;
            body.CopyTo(frame, 7);
            var err = Codec.TryDecode(frame, out _, out var msg);
            return err == DecodeError.None ? msg != null : msg == null;
        }));
    }

    [Fact]
    public void Readdir_entries_are_never_split()
    {
        var buf = new byte[60];
        var w = new DirEntryWriter(buf);
        Assert.True(w.TryAdd(new DirEntry(Q, 1, 4, ".")));
        Assert.False(w.TryAdd(new DirEntry(Q, 2, 4, "a-name-that-does-not-fit-anymore")));
        Assert.Equal(25, w.Length);
        var parsed = DirEntryWriter.Parse(buf.AsSpan(0, w.Length))!;
        Assert.Equal(".", Assert.Single(parsed).Name);
    }
}
