using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using Xunit;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>
/// usb9pfs framing (docs/USB9PFS.md, protocol rules): one T per IN transfer, its ZLP taken before the reply when the
/// size is a multiple of wMaxPacketSize; one R per OUT transfer, ended by a ZLP under the same rule.
/// </summary>
public class FramingTests
{
    private static byte[] Frame(int size, ushort tag, byte fill = 0x5a)
    {
        var f = new byte[size];
        f.AsSpan().Fill(fill);
        BinaryPrimitives.WriteUInt32LittleEndian(f, (uint)size);
        f[4] = 118; // Twrite
        BinaryPrimitives.WriteUInt16LittleEndian(f.AsSpan(5), tag);
        return f;
    }

    /// <summary>Reads the T, checks it, answers with an R of the given size; returns what the gadget saw.</summary>
    private static GadgetModel RoundTrip(int requestSize, int replySize, int mps = 512, int packetsPerPoll = int.MaxValue, int buffer = 1 << 20)
    {
        var gadget = new GadgetModel(mps, mps, packetsPerPoll);
        var request = Frame(requestSize, 7);
        gadget.Send(request);
        var usb = new UsbgTransport(gadget);
        var buf = new byte[buffer];
        int n = usb.ReadFrame(buf, CancellationToken.None);
        Assert.Equal(request, buf[..n]);
        usb.WriteFrame(Frame(replySize, 7, 0xa5));
        Assert.Empty(gadget.Violations);
        Assert.Single(gadget.Replies);
        Assert.Equal(replySize, gadget.Replies[0].Length);
        return gadget;
    }

    [Theory]
    [InlineData(7)]
    [InlineData(511)]
    [InlineData(512)]   // a 489-byte file write: p9_fwd.py misses this ZLP and dies
    [InlineData(513)]
    [InlineData(1024)]
    [InlineData(4095)]
    [InlineData(4096)]  // exactly our first read
    [InlineData(4097)]
    [InlineData(4608)]  // first read full, rest a packet multiple
    [InlineData(5000)]
    [InlineData(16384)] // the default buflen
    [InlineData(1048576)]
    public void A_T_message_of_any_size_is_read_whole_and_its_ZLP_taken_before_the_reply(int size)
    {
        var gadget = RoundTrip(size, 11);
        Assert.Equal(size % 512 == 0 ? 1 : 0, gadget.ZeroLengthPacketsSent);
    }

    [Theory]
    [InlineData(11)]
    [InlineData(512)]
    [InlineData(1024)]
    [InlineData(16384)]
    [InlineData(16385)]
    public void An_R_message_that_fills_its_last_packet_is_ended_by_a_ZLP(int size) => RoundTrip(64, size);

    [Theory]
    [InlineData(64)]   // full speed
    [InlineData(1024)] // SuperSpeed
    public void Other_packet_sizes_follow_the_same_rules(int mps)
    {
        foreach (var size in new[] { 7, mps - 1, mps, mps + 1, 4096, 8192, 3 * mps })
        {
            var gadget = RoundTrip(size, mps, mps);
            Assert.Equal(size % mps == 0 ? 1 : 0, gadget.ZeroLengthPacketsSent);
        }
    }

    [Fact]
    public void A_transfer_that_spans_poll_timeouts_is_resumed_not_restarted()
    {
        foreach (var size in new[] { 600, 4096, 9000, 20480 })
            RoundTrip(size, 512, packetsPerPoll: 3);
    }

    [Fact]
    public void A_T_message_larger_than_the_negotiated_msize_is_a_protocol_error_naming_the_size()
    {
        var gadget = new GadgetModel();
        gadget.Send(Frame(9000, 1));
        var e = Assert.Throws<InvalidDataException>(() => new UsbgTransport(gadget).ReadFrame(new byte[8192], CancellationToken.None));
        Assert.Contains("9000", e.Message);
    }

    [Fact]
    public void An_idle_read_stops_when_the_server_stops()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        Assert.ThrowsAny<OperationCanceledException>(() => new UsbgTransport(new GadgetModel()).ReadFrame(new byte[65536], cts.Token));
    }

    [Fact]
    public void Sizes_around_packet_boundaries_hold_for_any_request_and_reply() =>
        Prop.ForAll(Gen.Choose(7, 70_000).ToArbitrary(), Gen.Choose(7, 70_000).ToArbitrary(), Gen.Elements(64, 512, 1024).ToArbitrary(),
                (req, rep, mps) =>
                {
                    // bias towards the interesting sizes: exact packet multiples
                    if (req % 3 == 0) req = Math.Max(mps, req / mps * mps);
                    if (rep % 3 == 0) rep = Math.Max(mps, rep / mps * mps);
                    RoundTrip(req, rep, mps, packetsPerPoll: req % 5 == 0 ? 2 : int.MaxValue, buffer: 131072);
                })
            .QuickCheckThrowOnFailure();
}
