using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using NativeVae.Backends;
using NativeVae.Backends.Cpu;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels.Cpu;

namespace NativeVae.Tests;

/// <summary>
/// Owns every backend the tests share: each is created once per run, on first use (ILGPU compiles its kernels then),
/// and disposed when the run ends, so tests must not dispose them. Model and API tests take them by name
/// (<see cref="Names"/>); op tests take every kernel version through <see cref="Kernels.KernelBackends"/>.
/// </summary>
[SetUpFixture]
public sealed class TestBackends
{
    private const string IlgpuCpuName = "ilgpu-cpu";
    public const string CpuName = "cpu";

    private static readonly Dictionary<IlgpuKernelChoice, IlgpuBackend> Emulated = [];
    private static readonly Dictionary<SimdWidth, CpuBackend> Cpus = [];
    private static IlgpuBackend? _cuda;

    /// <summary>The backends every model parity test runs on, as a user names them (<c>--device</c>).</summary>
    public static IEnumerable<string> Names => [IlgpuCpuName, CpuName];

    /// <summary>Backends fast enough for SD-sized work (not the ILGPU CPU emulator).</summary>
    public static IEnumerable<string> FastNames => [CpuName];

    internal static IBackend Get(string name) => name switch
    {
        // The kernel versions a user gets on the emulator; the same instance serves the op tests' plain versions.
        IlgpuCpuName => IlgpuCpu(IlgpuKernelChoice.For(AcceleratorType.CPU)),
        CpuName => Cpu(SimdWidths.Best),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, $"no test backend of that name; known: {string.Join(", ", Names)}"),
    };

    /// <summary>ILGPU on its CPU accelerator with the given kernel versions, one backend per choice.</summary>
    internal static IlgpuBackend IlgpuCpu(IlgpuKernelChoice kernels)
    {
        if (!Emulated.TryGetValue(kernels, out var backend))
            Emulated[kernels] = backend = new IlgpuBackend(DevicePreference.IlgpuCpu, kernels);
        return backend;
    }

    /// <summary>ILGPU as a user's default gets it: CUDA when a GPU is present, else the emulator (the same instance as "ilgpu-cpu").</summary>
    internal static IlgpuBackend IlgpuAuto() =>
        HasCuda.Value ? _cuda ??= new IlgpuBackend(DevicePreference.Cuda) : (IlgpuBackend)Get(IlgpuCpuName);

    private static readonly Lazy<bool> HasCuda = new(() =>
    {
        using var probe = Context.Create(builder => builder.Cuda());
        return probe.GetCudaDevices().Count > 0;
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
        _cuda?.Dispose();
        Emulated.Clear();
        Cpus.Clear();
        _cuda = null;
    }
}
