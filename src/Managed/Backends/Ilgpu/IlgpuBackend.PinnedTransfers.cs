using ILGPU;
using ILGPU.Runtime;
using NativeVae.Core;

namespace NativeVae.Backends.Ilgpu;

// Exact tiling's activation space in page-locked memory of this backend's (IPinnedTransfers): a strip is copied
// between the space and a device tensor as one DMA per contiguous range, queued on the backend's stream behind the
// ops that write or read it, so the host neither copies nor waits between ops. The stream's order is what makes a
// queued copy safe: the op that wrote a tensor runs before its copy out, and the copy in before the op that reads it.
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

    public void CopyIn(PinnedBlock source, long sourceByte, Tensor target, long targetByte, long bytes)
    {
        var view = PinnedView(source, sourceByte, bytes, nameof(source));
        var t = Own(target, nameof(target));
        t.F32.Cast<byte>().SubView(targetByte, bytes).CopyFrom(_stream, view);
        _fromPinnedBytes += bytes;
    }

    public void CopyOut(Tensor source, long sourceByte, PinnedBlock target, long targetByte, long bytes)
    {
        var view = PinnedView(target, targetByte, bytes, nameof(target));
        var t = Own(source, nameof(source));
        t.F32.Cast<byte>().SubView(sourceByte, bytes).CopyTo(_stream, view);
        _toPinnedBytes += bytes;
    }

    public Tensor AsCopyable(Tensor tensor)
    {
        var t = Own(tensor, nameof(tensor));
        return t.IsHalf ? ToSingle(t) : t;
    }

    public void WaitForCopies() => Wait();

    /// <summary>Bytes [offset, offset + bytes) of one of this backend's blocks, as a view the stream copies with.</summary>
    private ArrayView<byte> PinnedView(PinnedBlock block, long offset, long bytes, string name)
    {
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
