using ILGPU.Runtime;
using NativeVae.Backends.Ilgpu;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// Where the tensor-core kernels' tests run: ILGPU's CPU accelerator (the intrinsics' C# fallbacks) always, and a
/// CUDA GPU (the instructions themselves) where ILGPU finds one; the accelerators are the shared test backends'.
/// </summary>
internal static class TensorCoreAccelerators
{
    private const string Emulated = "ilgpu-cpu";
    private const string Cuda = "cuda";

    public static IEnumerable<string> Names => TestBackends.HasCuda ? [Emulated, Cuda] : [Emulated];

    public static Accelerator Get(string name) => name switch
    {
        Emulated => TestBackends.IlgpuCpu(IlgpuKernelChoice.For(AcceleratorType.CPU)).Accelerator,
        Cuda => TestBackends.Cuda(IlgpuKernelChoice.For(AcceleratorType.Cuda)).Accelerator,
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "no tensor-core test accelerator of that name"),
    };
}
