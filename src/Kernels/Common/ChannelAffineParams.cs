namespace NativeVae.Kernels;

// A parameter block passed by value to the ILGPU channel-affine kernel (GroupNormCpu.ChannelAffine takes the same
// three values as arguments). Sizes are ints: the backend refuses tensors whose element count does not fit one launch.

/// <summary>A per-(batch, channel) affine over [Rows = Batch * Channels, Spatial].</summary>
internal struct ChannelAffineParams
{
    public int Rows;
    public int Spatial;
    public int FuseSilu;
}
