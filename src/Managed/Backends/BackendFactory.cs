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
    /// <param name="storage">Storage dtype of weights and activations: 16-bit storage runs on the SIMD CPU backend
    /// only (the ILGPU kernels are fp32), so asking for it on CUDA or ILGPU is refused, naming the device.</param>
    public static IBackend Create(DevicePreference preference, DType storage = DType.F32) => preference switch
    {
        DevicePreference.Cpu => new CpuBackend(storage: storage),
        DevicePreference.Auto when !HasCuda() => new CpuBackend(storage: storage),
        DevicePreference.Auto => Ilgpu(DevicePreference.Cuda, storage),
        DevicePreference.Cuda or DevicePreference.IlgpuCpu => Ilgpu(preference, storage),
        _ => throw new ArgumentOutOfRangeException(nameof(preference), preference, "unknown device preference"),
    };

    private static IlgpuBackend Ilgpu(DevicePreference preference, DType storage) => storage == DType.F32
        ? new IlgpuBackend(preference)
        : throw new NotSupportedException($"dtype {storage.ShortName()}: the {preference} kernels store fp32 only; " +
            "16-bit storage runs on the CPU backend (device cpu), or use dtype fp32");

    private static bool HasCuda()
    {
        using var context = Context.Create(builder => builder.Cuda());
        return context.GetCudaDevices().Count > 0;
    }
}
