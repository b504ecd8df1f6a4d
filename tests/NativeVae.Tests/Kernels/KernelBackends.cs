using NativeVae.Backends.Cpu;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels.Cpu;
using NativeVae.Kernels.Gpu;
using NativeVae.Core;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// The op tests' backend matrix: every kernel version of every backend (ILGPU's plain and tiled versions on its CPU
/// accelerator, the SIMD CPU backend at each vector width this machine accelerates, and, only where ILGPU finds a
/// CUDA GPU, ILGPU's plain and tiled versions on it), by name; instances come from <see cref="TestBackends"/>, so
/// none is created twice.
/// </summary>
internal static class KernelBackends
{
    public const string IlgpuPlain = "ilgpu-plain";
    public const string IlgpuTiled = "ilgpu-tiled";
    public const string CudaPlain = "cuda-plain";
    public const string CudaTiled = "cuda-tiled";
    private const string CpuPrefix = "cpu-";

    private static readonly IlgpuKernelChoice PlainKernels =
        new(Conv2dVersion.Direct, GroupNormVersion.Simple, AttentionVersion.RowPerThread);

    private static readonly IlgpuKernelChoice TiledKernels =
        new(Conv2dVersion.SharedTile, GroupNormVersion.GroupReduce, AttentionVersion.SharedTile);

    /// <summary>The CPU backend at every accelerated width, so the 512-, 256-, 128-bit and scalar paths all run here.</summary>
    public static IEnumerable<string> Cpu =>
        Enum.GetValues<SimdWidth>().Where(w => w <= SimdWidths.Best).Select(w => CpuPrefix + w);

    /// <summary>Both ILGPU choices on a CUDA GPU, when there is one; none otherwise (CI).</summary>
    public static IEnumerable<string> CudaVersions => TestBackends.HasCuda ? [CudaPlain, CudaTiled] : [];

    /// <summary>For ops with several ILGPU versions (conv2d, group_norm, attention): both ILGPU choices, every CPU width.</summary>
    public static IEnumerable<string> EveryVersion => [IlgpuPlain, IlgpuTiled, .. Cpu, .. CudaVersions];

    /// <summary>For ops with one ILGPU kernel (elementwise, channel affine, image conversions).</summary>
    public static IEnumerable<string> EveryBackend => [IlgpuPlain, .. Cpu, .. CudaVersions.Take(1)];

    public static IBackend Get(string name) => name switch
    {
        IlgpuPlain => TestBackends.IlgpuCpu(PlainKernels),
        IlgpuTiled => TestBackends.IlgpuCpu(TiledKernels),
        CudaPlain => TestBackends.Cuda(PlainKernels),
        CudaTiled => TestBackends.Cuda(TiledKernels),
        _ when name.StartsWith(CpuPrefix, StringComparison.Ordinal) =>
            TestBackends.Cpu(Enum.Parse<SimdWidth>(name[CpuPrefix.Length..])),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no op-test backend of that name"),
    };

    /// <summary>Every (backend, case) pair, shown as both names.</summary>
    public static IEnumerable<TestCaseData> Cases<T>(IEnumerable<string> backends, IEnumerable<T> cases) where T : notnull =>
        from backend in backends
        from c in cases
        select new TestCaseData(backend, c).SetArgDisplayNames(backend, c.ToString()!);

    /// <summary>
    /// GroupNorm with its side output <paramref name="stats"/> [N, groups, 2] = (mean, rstd), through the backend's
    /// test hook; the caller disposes both tensors.
    /// </summary>
    public static Tensor GroupNormWithStatistics(IBackend backend, Tensor x, Tensor gamma, Tensor beta, int groups,
        float eps, bool silu, out Tensor stats)
    {
        if (backend is not IBackendDiagnostics diagnostics)
            throw new NotSupportedException($"{backend.Name}: no GroupNorm statistics output for tests");
        return diagnostics.GroupNormWithStatistics(x, gamma, beta, groups, eps, silu, out stats);
    }
}
