namespace NativeVae.Core;

/// <summary>
/// A device with memory of its own whose copies run straight between its F32 tensors and page-locked host memory it
/// allocated: each copy is one DMA queued in order with the device's ops, and the host waits only when it touches the
/// host memory itself (<see cref="WaitForCopies"/>). Exact tiling keeps its activation space in such memory, so a
/// strip crosses the bus once each way with no host copy and no host wait between ops.
/// </summary>
internal interface IPinnedTransfers
{
    /// <summary>Page-locked host memory of <paramref name="bytes"/> bytes, contents unspecified.</summary>
    PinnedBlock AllocatePinned(long bytes);

    /// <summary>Queues a copy of <paramref name="bytes"/> bytes from <paramref name="source"/> into an F32 device tensor; returns at once.</summary>
    void CopyIn(PinnedBlock source, long sourceByte, Tensor target, long targetByte, long bytes);

    /// <summary>Queues a copy of <paramref name="bytes"/> bytes from an F32 device tensor into <paramref name="target"/>; returns at once.</summary>
    void CopyOut(Tensor source, long sourceByte, PinnedBlock target, long targetByte, long bytes);

    /// <summary>
    /// <paramref name="tensor"/> in the F32 NCHW form the copies take: the tensor itself when it is F32, else a new F32
    /// copy converted on the device (the caller disposes it), so a 16-bit tile comes back with no host conversion and
    /// no wait.
    /// </summary>
    Tensor AsCopyable(Tensor tensor);

    /// <summary>Waits for every queued op and copy: the host may then read and write the blocks.</summary>
    void WaitForCopies();
}

/// <summary>Page-locked host memory of an <see cref="IPinnedTransfers"/> device; the host reads and writes it as bytes.</summary>
internal abstract class PinnedBlock : IDisposable
{
    /// <summary>Its size in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>Bytes [<paramref name="offset"/>, offset + <paramref name="length"/>) for the host (after the device's copies are waited for).</summary>
    public abstract Span<byte> Bytes(long offset, int length);

    public abstract void Dispose();
}
