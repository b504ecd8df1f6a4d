namespace NativeVae.Kernels;

// A parameter block passed by value to both the ILGPU and the CPU kernels. Sizes are ints: the backend refuses
// tensors whose element count does not fit one launch (tiling keeps real work far below that).

/// <summary>GroupNorm over [Batch, Channels, Spatial] with Groups groups dividing Channels.</summary>
internal struct GroupNormParams
{
    public int Batch;
    public int Channels;
    public int Spatial;
    public int Groups;
    public float Eps;
    public int FuseSilu;
    /// <summary>1: the stats kernels write (mean, M2 = sum of squared deviations) instead of (mean, rstd).</summary>
    public int StatsAsMoments;
}
