using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NativeVae.Core;
using NativeVae.Backends.Cpu;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels.Cpu;

namespace NativeVae.Tests;

/// <summary>
/// Owns every backend the tests share: each is created once per run, on first use (ILGPU compiles its kernels then),
/// and disposed when the run ends, so tests must not dispose them. Model and API tests take them by name
/// (<see cref="Names"/>); op tests take every kernel version through <see cref="Kernels.KernelBackends"/>.
/// CUDA backends ("cuda" here, "cuda-plain"/"cuda-tiled" for op tests) are listed only when ILGPU finds a CUDA GPU,
/// so a machine without one (CI) runs exactly the same tests as before.
/// </summary>
[SetUpFixture]
public sealed class TestBackends
{
    public const string IlgpuCpuName = "ilgpu-cpu";
    public const string CpuName = "cpu";
    public const string CudaName = "cuda";

    private static readonly Dictionary<IlgpuKernelChoice, IlgpuBackend> Emulated = [];
    private static readonly Dictionary<SimdWidth, CpuBackend> Cpus = [];
    private static readonly Dictionary<IlgpuKernelChoice, IlgpuBackend> Cudas = [];
    private static readonly Dictionary<(DevicePreference, DType), IlgpuBackend> SixteenBit = [];

    /// <summary>The backends every model parity test runs on, as a user names them (<c>--device</c>); "cuda" only with a GPU.</summary>
    public static IEnumerable<string> Names => HasCuda ? [IlgpuCpuName, CpuName, CudaName] : [IlgpuCpuName, CpuName];

    /// <summary>Backends fast enough for SD-sized work (not the ILGPU CPU emulator); "cuda" only with a GPU.</summary>
    public static IEnumerable<string> FastNames => HasCuda ? [CpuName, CudaName] : [CpuName];

    internal static IBackend Get(string name) => name switch
    {
        // The kernel versions a user gets on the emulator; the same instance serves the op tests' plain versions.
        IlgpuCpuName => IlgpuCpu(IlgpuKernelChoice.For(AcceleratorType.CPU)),
        CpuName => Cpu(SimdWidths.Best),
        // The kernel versions a user gets on a GPU; the same instance serves the op tests' tiled CUDA versions.
        CudaName => Cuda(IlgpuKernelChoice.For(AcceleratorType.Cuda)),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, $"no test backend of that name; known: {string.Join(", ", Names)}"),
    };

    /// <summary>ILGPU on its CPU accelerator with the given kernel versions, one backend per choice.</summary>
    internal static IlgpuBackend IlgpuCpu(IlgpuKernelChoice kernels)
    {
        if (!Emulated.TryGetValue(kernels, out var backend))
            Emulated[kernels] = backend = new IlgpuBackend(DevicePreference.IlgpuCpu, kernels);
        return backend;
    }

    /// <summary>
    /// ILGPU storing bf16 or fp16 on the emulator (<see cref="DevicePreference.IlgpuCpu"/>) or CUDA, one backend per
    /// pair: its 16-bit kernels compile once per run (about 20 s on the emulator). fp32 on the emulator is "ilgpu-cpu"
    /// itself, whose kernels other tests have compiled already.
    /// </summary>
    internal static IlgpuBackend Ilgpu(DevicePreference device, DType storage)
    {
        if (device == DevicePreference.IlgpuCpu && storage == DType.F32) return (IlgpuBackend)Get(IlgpuCpuName);
        if (!SixteenBit.TryGetValue((device, storage), out var backend))
            SixteenBit[(device, storage)] = backend = new IlgpuBackend(device, storage: storage);
        return backend;
    }

    /// <summary>ILGPU as a user's default gets it: CUDA when a GPU is present, else the emulator (the same instance as "ilgpu-cpu").</summary>
    internal static IlgpuBackend IlgpuAuto() => (IlgpuBackend)Get(HasCuda ? CudaName : IlgpuCpuName);

    /// <summary>ILGPU on the first CUDA GPU with the given kernel versions, one backend per choice.</summary>
    internal static IlgpuBackend Cuda(IlgpuKernelChoice kernels)
    {
        if (!Cudas.TryGetValue(kernels, out var backend))
            Cudas[kernels] = backend = new IlgpuBackend(DevicePreference.Cuda, kernels);
        return backend;
    }

    /// <summary>
    /// Whether ILGPU finds a CUDA GPU. Evaluated while tests are discovered, so it must never throw: a machine
    /// without the CUDA driver (no libcuda) answers false.
    /// </summary>
    public static bool HasCuda => HasCudaProbe.Value;

    private static readonly Lazy<bool> HasCudaProbe = new(() =>
    {
        try
        {
            using var probe = Context.Create(builder => builder.Cuda());
            return probe.GetCudaDevices().Count > 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException
            or NotSupportedException or InvalidOperationException)
        {
            return false;
        }
    });

    /// <summary>The SIMD CPU backend pinned to one vector width, one backend per width.</summary>
    internal static CpuBackend Cpu(SimdWidth width)
    {
        if (!Cpus.TryGetValue(width, out var backend))
            Cpus[width] = backend = new CpuBackend(width);
        return backend;
    }

    [OneTimeTearDown]
    public void DisposeBackends()
    {
        foreach (var backend in Emulated.Values) backend.Dispose();
        foreach (var backend in Cpus.Values) backend.Dispose();
        foreach (var backend in Cudas.Values) backend.Dispose();
        foreach (var backend in SixteenBit.Values) backend.Dispose();
        Emulated.Clear();
        Cpus.Clear();
        Cudas.Clear();
        SixteenBit.Clear();
    }
}
