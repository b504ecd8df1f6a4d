using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// An activation of a tiled run: a region of an <see cref="ActivationSpace"/>. Disposing it frees the region.
/// </summary>
internal sealed class SpaceTensor : Tensor
{
    private readonly ActivationSpace _space;
    private int _disposed;

    public SpaceTensor(ActivationSpace space, TensorShape shape, DType elements, long byteOffset, int generation) : base(shape, DType.F32)
    {
        _space = space;
        Elements = elements;
        ByteOffset = byteOffset;
        Generation = generation;
    }

    /// <summary>
    /// How the space keeps its elements: fp32, or a 16-bit format. It is read and written as fp32 either way, so to the
    /// model it is an F32 tensor.
    /// </summary>
    public DType Elements { get; }

    /// <summary>The space's call this activation belongs to.</summary>
    public int Generation { get; }

    /// <summary>Where the region starts in the space.</summary>
    public long ByteOffset { get; }

    /// <summary>Bumped by every write, so that a cached copy of rows knows when it is stale.</summary>
    public int Version { get; set; }

    /// <summary>
    /// Per-channel moments of the values, merged by the tiled executor from what the convolution that wrote them
    /// returned (or from its own statistics pass); null until known.
    /// </summary>
    public ChannelMoments? Moments { get; set; }

    /// <summary>
    /// The tiles' statistics its convolution queued to a pinned space, not yet merged into <see cref="Moments"/>
    /// (which waits for the device); owned by this tensor.
    /// </summary>
    public TileStatistics? PendingMoments { get; set; }

    public override bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    public override void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        PendingMoments?.Dispose();
        PendingMoments = null;
        _space.Free(this);
    }
}
