using ILGPU;
using ILGPU.Runtime;
using NativeVae.Core;

namespace NativeVae.Backends.Ilgpu;

// Exact tiling's activation space in page-locked memory of this backend's (IPinnedTransfers): a strip is copied
// between the space and a device tensor as one DMA per contiguous range, queued on the backend's stream behind the
// ops that write or read it, so the host neither copies nor waits between ops. A 16-bit space's ranges cross the bus
// in 16 bits and are widened or narrowed by a flat pass of the layout-conversion kernels on the device. The stream's
// order is what makes a queued copy safe: the op that wrote a tensor runs before its copy out, and the copy in before
// the op that reads it.
internal sealed partial class IlgpuBackend : IPinnedTransfers
{
    private readonly HashSet<IlgpuPinnedBlock> _pinnedBlocks = [];
    private long _fromPinnedBytes;
    private long _toPinnedBytes;

    public PinnedBlock AllocatePinned(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        var block = new IlgpuPinnedBlock(this, _accelerator.AllocatePageLocked1D<byte>(bytes));
        _pinnedBlocks.Add(block);
        return block;
    }

    public void CopyIn(IReadOnlyList<PinnedRange> source, DType elements, Tensor target)
    {
        var t = Own(target, nameof(target));
        var single = t.F32;
        if (elements == DType.F32)
        {
            Gather(source, single.Cast<byte>(), nameof(source));
            return;
        }
        using var flat = FlatHalf(t.ElementCount, elements);
        Gather(source, flat.Halves.SubView(0, t.ElementCount).Cast<byte>(), nameof(source));
        Half.Elementwise.ToNchw(IsBf16(elements), flat.Layout, flat.Halves, single);
    }

    public void CopyOut(Tensor source, DType elements, IReadOnlyList<PinnedRange> target)
    {
        var t = Own(source, nameof(source));
        using var converted = t.IsHalf ? ToSingle(t) : null;
        var single = (converted ?? t).F32;
        if (elements == DType.F32)
        {
            Scatter(single.Cast<byte>(), target, nameof(target));
            return;
        }
        using var flat = FlatHalf(t.ElementCount, elements);
        Half.Elementwise.FromNchw(IsBf16(elements), flat.Layout, single, flat.Words);
        Scatter(flat.Halves.SubView(0, t.ElementCount).Cast<byte>(), target, nameof(target));
    }

    /// <summary>
    /// A 16-bit tensor whose stored elements are <paramref name="count"/> values in order (one pixel of
    /// <paramref name="count"/> channels), so the layout conversions read or write it as a flat run.
    /// </summary>
    private IlgpuTensor FlatHalf(long count, DType half)
    {
        RequireStorage(half);
        if (half == DType.F32) throw new ArgumentException("a pinned copy's 16-bit elements must be bf16 or fp16", nameof(half));
        return (IlgpuTensor)Allocate(TensorShape.Nchw(1, checked((int)count), 1, 1), half);
    }

    /// <summary>Queues the copies of <paramref name="ranges"/> into <paramref name="device"/> in turn; they must fill it.</summary>
    private void Gather(IReadOnlyList<PinnedRange> ranges, ArrayView<byte> device, string name) =>
        _fromPinnedBytes += CopyRanges(ranges, device, toDevice: true, name);

    /// <summary>Queues the copies of <paramref name="device"/>'s bytes into <paramref name="ranges"/> in turn; they must take all of it.</summary>
    private void Scatter(ArrayView<byte> device, IReadOnlyList<PinnedRange> ranges, string name) =>
        _toPinnedBytes += CopyRanges(ranges, device, toDevice: false, name);

    /// <summary>One queued DMA per range, between the ranges in turn and <paramref name="device"/>'s bytes, which they cover exactly; returns the bytes.</summary>
    private long CopyRanges(IReadOnlyList<PinnedRange> ranges, ArrayView<byte> device, bool toDevice, string name)
    {
        long at = 0;
        foreach (var r in ranges)
        {
            if (at + r.Bytes > device.Length)
                throw new ArgumentException($"pinned ranges '{name}' hold more than the tensor's {device.Length} bytes", name);
            var part = device.SubView(at, r.Bytes);
            if (toDevice) part.CopyFrom(_stream, PinnedView(r, name));
            else part.CopyTo(_stream, PinnedView(r, name));
            at += r.Bytes;
        }
        if (at != device.Length) throw new ArgumentException($"pinned ranges '{name}' hold {at} bytes, the tensor {device.Length}", name);
        return at;
    }

    public void WaitForCopies() => Wait();

    /// <summary>A range of one of this backend's blocks, as a view the stream copies with.</summary>
    private ArrayView<byte> PinnedView(PinnedRange range, string name)
    {
        var (block, offset, bytes) = range;
        if (block is not IlgpuPinnedBlock own || !_pinnedBlocks.Contains(own))
            throw new ArgumentException($"pinned block '{name}' was not allocated by {Name}, or was disposed", name);
        if (offset < 0 || bytes < 0 || offset + bytes > own.Length)
            throw new ArgumentOutOfRangeException(name, $"bytes [{offset}, {offset + bytes}) are outside the {own.Length}-byte block");
        return own.Array.ArrayView.SubView(offset, bytes);
    }

    /// <summary>Frees the blocks still held when the backend goes (after its stream drained).</summary>
    private void DisposePinnedBlocks()
    {
        foreach (var block in _pinnedBlocks.ToList()) block.Dispose();
    }

    /// <summary>A page-locked array of this backend's; disposing it returns the pages.</summary>
    private sealed class IlgpuPinnedBlock(IlgpuBackend owner, PageLockedArray1D<byte> array) : PinnedBlock
    {
        public PageLockedArray1D<byte> Array { get; } = array;

        public override long Length => Array.Length;

        public override Span<byte> Bytes(long offset, int length) => Array.Span.Slice(checked((int)offset), length);

        public override void Dispose()
        {
            if (owner._pinnedBlocks.Remove(this)) Array.Dispose();
        }
    }
}
