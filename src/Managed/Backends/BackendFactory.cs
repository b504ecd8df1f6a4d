using NativeVae.Core;
using ILGPU;
using ILGPU.Runtime.Cuda;
using NativeVae.Backends.Cpu;
using NativeVae.Backends.Ilgpu;

namespace NativeVae.Backends;

/// <summary>Creates the backend a <see cref="DevicePreference"/> names.</summary>
internal static class BackendFactory
{
    /// <summary>
    /// Cpu: the SIMD CPU backend. Auto: ILGPU on CUDA when an NVIDIA GPU is present, else the SIMD CPU backend
    /// (ILGPU's CPU accelerator is an emulator, far slower). Cuda, IlgpuCpu: ILGPU as named.
    /// </summary>
    /// <param name="storage">Storage dtype of weights and activations (fp32, bf16 or fp16) on every backend: on ILGPU
    /// the 16-bit kernels run convolutions on tensor cores.</param>
    public static IBackend Create(DevicePreference preference, DType storage = DType.F32) => preference switch
    {
        DevicePreference.Cpu => new CpuBackend(storage: storage),
        DevicePreference.Auto when !HasCuda() => new CpuBackend(storage: storage),
        DevicePreference.Auto => Ilgpu(DevicePreference.Cuda, storage),
        DevicePreference.Cuda or DevicePreference.IlgpuCpu => Ilgpu(preference, storage),
        _ => throw new ArgumentOutOfRangeException(nameof(preference), preference, "unknown device preference"),
    };

    private static IlgpuBackend Ilgpu(DevicePreference preference, DType storage) => new(preference, storage: storage);

    private static bool HasCuda()
    {
        using var context = Context.Create(builder => builder.Cuda());
        return context.GetCudaDevices().Count > 0;
    }
}
