namespace NativeVae.Kernels;

/// <summary>
/// GroupNorm statistics from per-tile channel moments: moments [Batch, Tiles, ChannelStride, 3] = (count, mean, M2)
/// as the tensor-core conv writes them; group g covers channels [g * ChannelsPerGroup, (g + 1) * ChannelsPerGroup).
/// </summary>
internal struct TileMomentsParams
{
    public int Batch;
    public int Tiles;
    public int ChannelStride;
    public int Groups;
    public int ChannelsPerGroup;
    public float Eps;
    /// <summary>1: write (mean, M2 = sum of squared deviations) instead of (mean, rstd), as GroupNormParams.StatsAsMoments.</summary>
    public int StatsAsMoments;
}
