namespace NativeVae;

/// <summary>Which device runs the model.</summary>
public enum DevicePreference
{
    /// <summary>ILGPU on CUDA when an NVIDIA GPU is present, else the SIMD CPU backend.</summary>
    Auto,

    /// <summary>ILGPU kernels on the first CUDA GPU; fails when none is present.</summary>
    Cuda,

    /// <summary>ILGPU kernels on ILGPU's CPU accelerator: an emulator for checking GPU kernels, slow.</summary>
    IlgpuCpu,

    /// <summary>The SIMD CPU backend: hand-vectorised kernels on every core (the fast way without a GPU).</summary>
    Cpu,
}
