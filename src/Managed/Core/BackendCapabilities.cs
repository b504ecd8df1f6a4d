namespace NativeVae.Core;

/// <summary>
/// What a backend does beyond the op contract of <see cref="IBackend"/>. Callers (the API, the planner, the
/// benchmarks, the tests) ask here instead of switching on backend types.
/// </summary>
/// <param name="FusesNormIntoConv">
/// <see cref="IBackend.NormConv2d"/> applies the GroupNorm while the convolution reads its input, so the normalised
/// tensor is never stored (a dry run that plans memory for this backend must count it so).
/// </param>
/// <param name="MemoryCapacityBytes">
/// Bytes of the memory the backend allocates from: the GPU's memory, or the host memory available to the process.
/// </param>
/// <param name="GathersChannelMoments">
/// Some ops leave per-channel moments on their outputs (<see cref="Tensor.ChannelMoments"/>) that a
/// GroupNorm reading them uses instead of a statistics pass.
/// </param>
/// <param name="GroupNormStatisticsOutput">
/// <see cref="IBackend.GroupNormWithStatistics"/> is implemented (the kernels' side output, for tests).
/// </param>
internal readonly record struct BackendCapabilities(
    bool FusesNormIntoConv,
    long MemoryCapacityBytes,
    bool GathersChannelMoments = false,
    bool GroupNormStatisticsOutput = false)
{
    /// <summary>The host memory the process may use, as the GC sees it (container limits included).</summary>
    public static long HostMemoryBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
}
