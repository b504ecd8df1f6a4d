namespace NativeVae;

/// <summary>What memory a backend allocates its tensors from (the denominator of the benchmark's memory share).</summary>
public enum DeviceMemoryKind
{
    /// <summary>A GPU's own memory.</summary>
    Gpu,

    /// <summary>Host memory that ILGPU's CPU accelerator (an emulator of the GPU kernels) allocates from.</summary>
    Emulator,

    /// <summary>Host memory (RAM) of the SIMD CPU backend.</summary>
    Ram,
}
