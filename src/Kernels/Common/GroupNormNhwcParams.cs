namespace NativeVae.Kernels;

/// <summary>
/// GroupNorm over 16-bit NHWC [Batch, Pixels, ChannelStride] with Channels real channels (the rest zero padding) in
/// Groups groups. Statistics come in two steps: per (batch, tile of PixelsPerTile pixels, channel) moments over the
/// whole grid, then GroupNormGpu.MergeTileMoments; the normalisation is one full-grid pass.
/// </summary>
internal struct GroupNormNhwcParams
{
    public int Batch;
    public int Pixels;
    public int ChannelStride;
    public int Channels;
    public int Groups;
    public int PixelsPerTile;
    public float Eps;
    public int FuseSilu;
}
