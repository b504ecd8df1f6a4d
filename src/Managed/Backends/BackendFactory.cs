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
    public static IBackend Create(DevicePreference preference) => preference switch
    {
        DevicePreference.Cpu => new CpuBackend(),
        DevicePreference.Auto when !HasCuda() => new CpuBackend(),
        DevicePreference.Auto => new IlgpuBackend(DevicePreference.Cuda),
        DevicePreference.Cuda or DevicePreference.IlgpuCpu => new IlgpuBackend(preference),
        _ => throw new ArgumentOutOfRangeException(nameof(preference), preference, "unknown device preference"),
    };

    private static bool HasCuda()
    {
        using var context = Context.Create(builder => builder.Cuda());
        return context.GetCudaDevices().Count > 0;
    }
}
