using System.Runtime.InteropServices;
using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Activations in page-locked host memory of the device's (<see cref="IPinnedTransfers"/>), in chunks of a fixed size:
/// the device copies strips straight in and out of it (<see cref="CopyIn"/>, <see cref="CopyOut"/>) as DMAs queued
/// with its ops, and the host reads or writes it only after waiting for them, which it does once per run of device
/// copies, not per copy. Elements are fp32, or the device's 16-bit format for what the device stores in 16 bits.
/// </summary>
/// <param name="elements">the device's storage: fp32, or the 16-bit format its feature maps are kept in.</param>
internal sealed class PinnedMedium(IPinnedTransfers device, DType elements) : IActivationMedium
{
    /// <summary>Bytes per chunk: 64 MiB, so the space grows without copying what it holds.</summary>
    private const long ChunkBytes = 64L << 20;

    private readonly List<PinnedBlock> _chunks = [];

    /// <summary>Whether device copies were queued since the host last waited for them.</summary>
    private bool _copiesQueued;

    public DType Elements => elements;

    public bool Holds(DType kept) => kept == DType.F32 || kept == elements;

    public long Length => _chunks.Count * ChunkBytes;

    public void EnsureLength(long bytes)
    {
        while (Length < bytes) _chunks.Add(device.AllocatePinned(ChunkBytes));
    }

    public void Read(long byteOffset, Span<float> destination, DType kept)
    {
        WaitForDevice();
        int size = kept.ByteSize();
        foreach (var p in Pieces(byteOffset, (long)destination.Length * size))
            ElementConversion.Widen(kept, p.Chunk.Bytes(p.At, p.Length), destination.Slice(p.Done / size, p.Length / size));
    }

    public void Write(long byteOffset, ReadOnlySpan<float> source, DType kept)
    {
        WaitForDevice();
        int size = kept.ByteSize();
        foreach (var p in Pieces(byteOffset, (long)source.Length * size))
            ElementConversion.Narrow(kept, source.Slice(p.Done / size, p.Length / size), p.Chunk.Bytes(p.At, p.Length));
    }

    /// <summary>Queues copies of byte ranges <paramref name="ranges"/>, kept as <paramref name="kept"/>, into device tensor <paramref name="target"/> in turn.</summary>
    public void CopyIn(IEnumerable<(long Byte, long Bytes)> ranges, DType kept, Tensor target)
    {
        _copiesQueued = true;
        device.CopyIn(Pieces(ranges), kept, target);
    }

    /// <summary>Queues copies of device tensor <paramref name="source"/>'s elements, kept as <paramref name="kept"/>, into byte ranges <paramref name="ranges"/> in turn.</summary>
    public void CopyOut(Tensor source, DType kept, IEnumerable<(long Byte, long Bytes)> ranges)
    {
        _copiesQueued = true;
        device.CopyOut(source, kept, Pieces(ranges));
    }

    /// <summary>The chunks' ranges that hold byte ranges <paramref name="ranges"/>, in order.</summary>
    private List<PinnedRange> Pieces(IEnumerable<(long Byte, long Bytes)> ranges) =>
        [.. ranges.SelectMany(r => Pieces(r.Byte, r.Bytes)).Select(p => new PinnedRange(p.Chunk, p.At, p.Length))];

    /// <summary>The host is about to touch the memory: the device's queued copies must have run.</summary>
    private void WaitForDevice()
    {
        if (!_copiesQueued) return;
        device.WaitForCopies();
        _copiesQueued = false;
    }

    /// <summary>One chunk's part of a byte range: where in the chunk, how many bytes of the range come before it, its length.</summary>
    private readonly record struct RangePiece(PinnedBlock Chunk, long At, int Done, int Length);

    /// <summary>The pieces of bytes [byteOffset, byteOffset + bytes), chunk by chunk (a range is at most 2 GiB: one span's).</summary>
    private IEnumerable<RangePiece> Pieces(long byteOffset, long bytes)
    {
        if (byteOffset < 0 || bytes < 0 || byteOffset + bytes > Length || bytes > int.MaxValue)
            throw new ArgumentOutOfRangeException(nameof(byteOffset), byteOffset, $"bytes [{byteOffset}, {byteOffset + bytes}) are outside the {Length}-byte activation space");
        for (long done = 0; done < bytes;)
        {
            long at = byteOffset + done;
            long start = at % ChunkBytes;
            int length = (int)Math.Min(bytes - done, ChunkBytes - start);
            yield return new RangePiece(_chunks[(int)(at / ChunkBytes)], start, (int)done, length);
            done += length;
        }
    }

    public void Dispose()
    {
        WaitForDevice();
        foreach (var chunk in _chunks) chunk.Dispose();
        _chunks.Clear();
    }
}
