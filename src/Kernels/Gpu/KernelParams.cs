namespace NativeVae.Kernels.Gpu;

// Parameter blocks passed by value to the kernels. Sizes are ints: the backend refuses tensors whose
// element count does not fit one launch (tiling keeps real work far below that).

/// <summary>Geometry of one conv2d launch, NCHW input and output, weight [Cout, Cin, K, K].</summary>
public struct Conv2dParams
{
    public int Batch;
    public int InChannels;
    public int InHeight;
    public int InWidth;
    public int OutChannels;
    public int OutHeight;
    public int OutWidth;
    public int Kernel;
    public int Stride;
    public int PadTop;
    public int PadLeft;
    /// <summary>1: the input is read as if nearest-upsampled 2x (virtual size 2H x 2W).</summary>
    public int Upsample2x;
    public int HasBias;
    public int HasResidual;
}

/// <summary>GroupNorm over [Batch, Channels, Spatial] with Groups groups dividing Channels.</summary>
public struct GroupNormParams
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

/// <summary>A per-(batch, channel) affine over [Rows = Batch * Channels, Spatial].</summary>
public struct ChannelAffineParams
{
    public int Rows;
    public int Spatial;
    public int FuseSilu;
}

/// <summary>Single-head attention, Q/K/V/output channel-major [Batch, Channels, Tokens].</summary>
public struct AttentionParams
{
    public int Batch;
    public int Channels;
    public int Tokens;
    public float Scale;
}
