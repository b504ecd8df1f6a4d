using System.Runtime.InteropServices;
using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Activations in page-locked host memory of the device's (<see cref="IPinnedTransfers"/>), fp32 in chunks of a fixed
/// size: the device copies strips straight in and out of it (<see cref="CopyIn"/>, <see cref="CopyOut"/>) as DMAs
/// queued with its ops, and the host reads or writes it only after waiting for them, which it does once per run of
/// device copies, not per copy.
/// </summary>
internal sealed class PinnedMedium(IPinnedTransfers device) : IActivationMedium
{
    /// <summary>Bytes per chunk: 64 MiB, so the space grows without copying what it holds.</summary>
    private const long ChunkBytes = 64L << 20;

    private readonly List<PinnedBlock> _chunks = [];

    /// <summary>Whether device copies were queued since the host last waited for them.</summary>
    private bool _copiesQueued;

    public DType Elements => DType.F32;

    public long Length => _chunks.Count * ChunkBytes;

    public void EnsureLength(long bytes)
    {
        while (Length < bytes) _chunks.Add(device.AllocatePinned(ChunkBytes));
    }

    public void Read(long byteOffset, Span<float> destination)
    {
        WaitForDevice();
        var bytes = MemoryMarshal.AsBytes(destination);
        foreach (var p in Pieces(byteOffset, bytes.Length)) p.Chunk.Bytes(p.At, p.Length).CopyTo(bytes.Slice(p.Done, p.Length));
    }

    public void Write(long byteOffset, ReadOnlySpan<float> source)
    {
        WaitForDevice();
        var bytes = MemoryMarshal.AsBytes(source);
        foreach (var p in Pieces(byteOffset, bytes.Length)) bytes.Slice(p.Done, p.Length).CopyTo(p.Chunk.Bytes(p.At, p.Length));
    }

    /// <summary>Queues copies of bytes [byteOffset, byteOffset + bytes) into device tensor <paramref name="target"/> from <paramref name="targetByte"/>.</summary>
    public void CopyIn(long byteOffset, Tensor target, long targetByte, long bytes)
    {
        _copiesQueued = true;
        foreach (var p in Pieces(byteOffset, bytes)) device.CopyIn(p.Chunk, p.At, target, targetByte + p.Done, p.Length);
    }

    /// <summary>Queues copies of device tensor <paramref name="source"/>'s bytes from <paramref name="sourceByte"/> into [byteOffset, byteOffset + bytes).</summary>
    public void CopyOut(Tensor source, long sourceByte, long byteOffset, long bytes)
    {
        _copiesQueued = true;
        foreach (var p in Pieces(byteOffset, bytes)) device.CopyOut(source, sourceByte + p.Done, p.Chunk, p.At, p.Length);
    }

    /// <summary>Device tensor <paramref name="t"/> as the copies take it (F32; a 16-bit one converted on the device into a new tensor).</summary>
    public Tensor AsCopyable(Tensor t) => device.AsCopyable(t);

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
