using System.Buffers.Binary;
using RootfsExport.Usb9pBridge.Native;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>
/// The board's end of a usb9pfs link as net/9p/trans_usbg.c drives it (docs/USB9PFS.md), seen
/// through USB bulk transfer rules: a T-message goes out as packets of wMaxPacketSize, a short packet or a
/// zero-length packet ends the transfer; the IN request completes only when its ZLP was taken; only then is
/// the OUT request for the reply queued; a reply ends on a short packet or a ZLP; a reply with a tag that is
/// not the request's wedges the gadget. Every rule the host side breaks is recorded in <see cref="Violations"/>.
/// The real kernel gadget is exercised by the QEMU rig (tests/Usb9p.Tests); this model keeps the framing
/// rules checked in the fast suite, at every size around packet boundaries.
/// </summary>
public sealed class GadgetModel(int maxPacketIn = 512, int maxPacketOut = 512, int packetsPerPoll = int.MaxValue) : IBulkEndpoints
{
    private readonly object _gate = new();
    private readonly Queue<byte[]> _board = new();
    private byte[]? _current;
    private int _sent;
    private bool _zlpPending, _inComplete;
    private readonly List<byte> _reply = new();

    public int MaxPacketSizeIn => maxPacketIn;
    public int MaxPacketSizeOut => maxPacketOut;
    public string Description => "model gadget";
    public List<string> Violations { get; } = new();
    public List<byte[]> Replies { get; } = new();
    public int ZeroLengthPacketsSent { get; private set; }

    /// <summary>Queues T-messages the board sends, each after the previous one got its reply.</summary>
    public void Send(params byte[][] requests)
    {
        lock (_gate) foreach (var r in requests) _board.Enqueue(r);
    }

    public bool Idle
    {
        get { lock (_gate) return _current == null && _board.Count == 0; }
    }

    public UsbError ReadIn(Span<byte> buffer, uint timeoutMs, out int transferred)
    {
        transferred = 0;
        lock (_gate)
        {
            if (_current == null)
            {
                if (_board.Count == 0) return Wait(timeoutMs);
                _current = _board.Dequeue();
                _sent = 0;
                _zlpPending = _inComplete = false;
            }
            if (_inComplete) return Wait(timeoutMs); // no second T before the reply: one request in flight
            if (_zlpPending)
            {
                _zlpPending = false;
                _inComplete = true;
                ZeroLengthPacketsSent++;
                return UsbError.Success;
            }
            int packets = 0;
            while (_sent < _current.Length)
            {
                if (packets == packetsPerPoll) return UsbError.Timeout; // the rest arrives later
                int packet = Math.Min(maxPacketIn, _current.Length - _sent);
                if (packet > buffer.Length - transferred)
                {
                    if (transferred == buffer.Length) return UsbError.Success; // buffer full: transfer done
                    Violations.Add($"babble: a {packet}-byte packet into {buffer.Length - transferred} bytes of buffer");
                    return UsbError.Overflow;
                }
                _current.AsSpan(_sent, packet).CopyTo(buffer[transferred..]);
                _sent += packet;
                transferred += packet;
                packets++;
                if (packet < maxPacketIn)
                {
                    _inComplete = true; // short packet: the transfer and the IN request end
                    return UsbError.Success;
                }
            }
            // the message ended on a packet boundary: req->zero sends a ZLP
            if (transferred < buffer.Length)
            {
                _inComplete = true;
                ZeroLengthPacketsSent++;
                return UsbError.Success;
            }
            _zlpPending = true;
            return UsbError.Success;
        }
    }

    public UsbError WriteOut(ReadOnlySpan<byte> data, uint timeoutMs, out int transferred)
    {
        transferred = 0;
        lock (_gate)
        {
            if (_current == null || !_inComplete)
            {
                // trans_usbg queues its OUT request only after the IN request completed (ZLP included)
                Violations.Add(_current == null ? $"unsolicited {data.Length}-byte OUT transfer" : $"{data.Length}-byte OUT transfer before the T-message's IN transfer completed");
                return UsbError.Timeout;
            }
            _reply.AddRange(data.ToArray());
            transferred = data.Length;
            if (data.Length > 0 && data.Length % maxPacketOut == 0) return UsbError.Success; // more (or a ZLP) to come
            var reply = _reply.ToArray();
            _reply.Clear();
            if (reply.Length < 7 || BinaryPrimitives.ReadUInt32LittleEndian(reply) != reply.Length)
                Violations.Add($"reply of {reply.Length} bytes does not carry its own size");
            else if (BinaryPrimitives.ReadUInt16LittleEndian(reply.AsSpan(5)) != BinaryPrimitives.ReadUInt16LittleEndian(_current.AsSpan(5)))
                Violations.Add("reply with a tag that is not the request's: the gadget wedges");
            Replies.Add(reply);
            _current = null;
            return UsbError.Success;
        }
    }

    private UsbError Wait(uint timeoutMs)
    {
        Monitor.Wait(_gate, (int)Math.Min(timeoutMs, 20));
        return UsbError.Timeout;
    }
}
