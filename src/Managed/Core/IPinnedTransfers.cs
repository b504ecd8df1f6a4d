namespace NativeVae.Core;

/// <summary>
/// A device with memory of its own whose copies run straight between its tensors and page-locked host memory it
/// allocated: each copy is one DMA per range, queued in order with the device's ops, and the host waits only when it
/// touches the host memory itself (<see cref="WaitForCopies"/>). Exact tiling keeps its activation space in such
/// memory, so a strip crosses the bus once each way with no host copy and no host wait between ops. The host memory
/// holds elements in fp32 or in the device's 16-bit format (half the bytes over the bus): the device converts.
/// </summary>
internal interface IPinnedTransfers
{
    /// <summary>Page-locked host memory of <paramref name="bytes"/> bytes, contents unspecified.</summary>
    PinnedBlock AllocatePinned(long bytes);

    /// <summary>
    /// Queues copies of <paramref name="source"/>'s ranges, which together hold an F32 device tensor's elements in
    /// NCHW order, each as <paramref name="elements"/> (F32, or a 16-bit format the device widens), into
    /// <paramref name="target"/>; returns at once.
    /// </summary>
    void CopyIn(IReadOnlyList<PinnedRange> source, DType elements, Tensor target);

    /// <summary>
    /// Queues copies of device tensor <paramref name="source"/>'s elements, in NCHW order and each as
    /// <paramref name="elements"/> (F32, or a 16-bit format the device narrows to), into <paramref name="target"/>'s
    /// ranges in turn; returns at once. A 16-bit source (NHWC on the device) is converted on the device first.
    /// </summary>
    void CopyOut(Tensor source, DType elements, IReadOnlyList<PinnedRange> target);

    /// <summary>Waits for every queued op and copy: the host may then read and write the blocks.</summary>
    void WaitForCopies();
}

/// <summary>Bytes [<see cref="Byte"/>, Byte + <see cref="Bytes"/>) of a pinned block.</summary>
internal readonly record struct PinnedRange(PinnedBlock Block, long Byte, long Bytes);

/// <summary>Page-locked host memory of an <see cref="IPinnedTransfers"/> device; the host reads and writes it as bytes.</summary>
internal abstract class PinnedBlock : IDisposable
{
    /// <summary>Its size in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>Bytes [<paramref name="offset"/>, offset + <paramref name="length"/>) for the host (after the device's copies are waited for).</summary>
    public abstract Span<byte> Bytes(long offset, int length);

    public abstract void Dispose();
}
