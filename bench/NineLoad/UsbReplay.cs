using System.Buffers.Binary;
using RootfsExport.NineP.Protocol;
using RootfsExport.Usb9pBridge;

namespace RootfsExport.NineLoad;

/// <summary>
/// The floor of our USB transport: a recording (made with <c>usb forward</c> → <c>nineload record</c> → a
/// server) answered straight on a usb9pfs gadget's bulk endpoints by the same framing <c>serve --usb</c> uses
/// (GadgetSupervisor, UsbgTransport, libusb), with no 9P work at all. Whatever a board then takes per request
/// is the rig plus libusb, which no server behind that transport can go below.
/// </summary>
public static class UsbReplay
{
    public static int Serve(string file, TimeSpan limit)
    {
        var recording = new Recording(Replay.Load(file));
        int total = recording.Left, unrecorded = 0;
        using var stop = new CancellationTokenSource(limit);
        Console.WriteLine($"replaying {total} pairs from {file} on the first usb9pfs gadget");
        var supervisor = new GadgetSupervisor(GadgetFilter.Any, (usb, ct) => Task.Factory.StartNew(() => Session(usb, ct),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default), m => Console.WriteLine($"nineload: {m}"));
        supervisor.RunAsync(stop.Token).GetAwaiter().GetResult();
        if (recording.Left > 0 || unrecorded > 0)
        {
            Console.Error.WriteLine($"nineload: {recording.Left} of {total} recorded requests never came, {unrecorded} came that were not recorded ({recording.Unrecorded})");
            return 2;
        }
        Console.WriteLine($"replayed all {total} pairs");
        return 0;

        void Session(UsbgTransport usb, CancellationToken ct)
        {
            var request = new byte[usb.MaxMessageSize];
            var error = new byte[64];
            while (recording.Left > 0 && !ct.IsCancellationRequested)
            {
                int n = usb.ReadFrame(request, ct);
                ushort tag = BinaryPrimitives.ReadUInt16LittleEndian(request.AsSpan(5));
                if (!recording.TryAnswer(request.AsMemory(0, n), out var reply))
                {
                    // the gadget must get exactly one reply per request, even one we cannot replay
                    unrecorded++;
                    usb.WriteFrame(error.AsSpan(0, Codec.Encode(error, tag, new Rlerror(5))));
                    continue;
                }
                usb.WriteFrame(reply);
            }
            stop.Cancel(); // all answered: the run is over
        }
    }
}
