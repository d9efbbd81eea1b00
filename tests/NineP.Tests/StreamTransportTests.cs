using System.Net;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Transport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>Byte-stream framing with read-ahead, and replies queued while a pipelining client's requests are read ahead.</summary>
public class StreamTransportTests
{
    private static byte[] Frame(ushort tag, Message m)
    {
        var b = new byte[Codec.Measure(m)];
        Codec.Encode(b, tag, m);
        return b;
    }

    private static async Task<(Socket Client, StreamTransport Server)> Pair()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveTimeout = 5000 };
        await client.ConnectAsync(listener.LocalEndPoint!);
        var accepted = await listener.AcceptAsync();
        return (client, new StreamTransport(new NetworkStream(accepted, ownsSocket: true), "test"));
    }

    private static List<ushort> ReceiveTags(Socket s, int count)
    {
        var tags = new List<ushort>();
        var buf = new byte[4096];
        int have = 0;
        while (tags.Count < count)
        {
            int n = s.Receive(buf, have, buf.Length - have, SocketFlags.None);
            if (n == 0) break;
            have += n;
            int at = 0;
            while (have - at >= 7 && BitConverter.ToInt32(buf, at) <= have - at)
            {
                tags.Add(BitConverter.ToUInt16(buf, at + 5));
                at += BitConverter.ToInt32(buf, at);
            }
            Array.Copy(buf, at, buf, 0, have - at);
            have -= at;
        }
        return tags;
    }

    [Fact]
    public async Task Replies_queued_behind_read_ahead_requests_all_arrive_in_order()
    {
        var (client, server) = await Pair();
        using (client)
        await using (server)
        {
            client.Send([.. Frame(1, new Tclunk(1)), .. Frame(2, new Tclunk(2)), .. Frame(3, new Tclunk(3))]);
            var buf = new byte[256];
            for (ushort tag = 1; tag <= 3; tag++)
            {
                Assert.True(await server.ReadFrameAsync(buf, default) > 0);
                if (server.HasBufferedFrame) server.QueueFrame(Frame(tag, new Rclunk()));
                else await server.WriteFrameAsync(Frame(tag, new Rclunk()), default);
            }
            Assert.Equal([1, 2, 3], ReceiveTags(client, 3));
        }
    }

    [Fact]
    public async Task The_next_frames_size_is_seen_before_it_is_read_and_zero_at_the_end()
    {
        var (client, server) = await Pair();
        await using (server)
        {
            using (client)
            {
                var walk = Frame(9, new Twalk(0, 1, ["etc", "hostname"]));
                // split inside the size field: the peek has to wait for the rest of it
                client.Send(walk.AsSpan(0, 2));
                var peek = Task.Run(() => server.PeekFrameSizeAsync(default).AsTask()); // blocking IO: off this thread
                await Task.Delay(50);
                client.Send(walk.AsSpan(2));
                Assert.Equal((uint)walk.Length, await peek.WaitAsync(TimeSpan.FromSeconds(5)));
                var buf = new byte[walk.Length];
                Assert.Equal(walk.Length, await server.ReadFrameAsync(buf, default));
                Assert.Equal(walk, buf);
            }
            Assert.Equal(0u, await server.PeekFrameSizeAsync(default));
        }
    }

    [Fact]
    public async Task A_queued_reply_goes_out_before_the_reader_waits_for_the_next_request()
    {
        var (client, server) = await Pair();
        using (client)
        await using (server)
        {
            client.Send(Frame(1, new Tclunk(1)));
            var buf = new byte[256];
            Assert.True(await server.ReadFrameAsync(buf, default) > 0);
            Assert.False(server.HasBufferedFrame);
            server.QueueFrame(Frame(1, new Rclunk())); // as if more were read ahead
            // the reader now blocks for request 2; the client only sends it once it has reply 1
            var next = Task.Run(() => server.ReadFrameAsync(buf, default).AsTask());
            Assert.Equal([1], ReceiveTags(client, 1));
            client.Send(Frame(2, new Tclunk(2)));
            Assert.True(await next.WaitAsync(TimeSpan.FromSeconds(5)) > 0);
        }
    }
}
