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
/// <param name="FreeMemoryBytes">
/// Memory free for new allocations now, where the backend can tell (CUDA's free memory; the host's MemAvailable), so
/// that planning sees what other processes hold; null where it cannot.
/// </param>
/// <param name="MemoryIsHost">
/// The backend's tensors live in host memory (the SIMD CPU backend): exact tiling's host-side activations then share
/// the budget with the tiles, so it cannot use less memory than an untiled call.
/// </param>
/// <param name="ChunksAttention">
/// <see cref="IBackend.AttentionOverKeys"/> runs, so exact tiling can split attention into strips of queries and keys.
/// </param>
/// <param name="FusesConvRelu">
/// The convolutions honour <see cref="Conv2dSpec.Relu"/>: a conv followed by ReLU is one op with one output, not two
/// (and under exact tiling one pass through the activation space, not two).
/// </param>
internal readonly record struct BackendCapabilities(
    bool FusesNormIntoConv,
    long MemoryCapacityBytes,
    bool MemoryIsHost = false,
    long? FreeMemoryBytes = null,
    bool ChunksAttention = false,
    bool FusesConvRelu = false)
{
    /// <summary>The host memory the process may use, as the GC sees it (container limits included).</summary>
    public static long HostMemoryBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>
    /// Host memory free for new allocations now: Linux's MemAvailable (free pages plus reclaimable caches), capped by
    /// what the GC lets the process have; elsewhere the GC's figure less its heap.
    /// </summary>
    public static long HostFreeBytes
    {
        get
        {
            var gc = GC.GetGCMemoryInfo();
            long allowed = gc.TotalAvailableMemoryBytes - gc.HeapSizeBytes;
            return MemAvailableBytes() is long available ? Math.Min(available, allowed) : allowed;
        }
    }

    private const string MemInfoPath = "/proc/meminfo";
    private const string MemAvailableKey = "MemAvailable:";
    private const long BytesPerKiB = 1024;

    private static long? MemAvailableBytes()
    {
        try
        {
            if (!File.Exists(MemInfoPath)) return null;
            foreach (string line in File.ReadLines(MemInfoPath))
            {
                if (!line.StartsWith(MemAvailableKey, StringComparison.Ordinal)) continue;
                var fields = line[MemAvailableKey.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return fields.Length > 0 && long.TryParse(fields[0], out long kib) ? kib * BytesPerKiB : null;
            }
        }
        catch (IOException)
        {
        }
        return null;
    }
}
