namespace NativeVae.Kernels.Gpu;

/// <summary>
/// A kernel's bf16 and fp16 versions, each loaded (compiled) on its first use: a backend stores one format, so it never
/// compiles the other's (about half of a 16-bit backend's compile time on ILGPU's CPU accelerator).
/// </summary>
internal sealed class FormatKernels<TKernel>(Func<TKernel> loadBf16, Func<TKernel> loadF16) where TKernel : class
{
    private TKernel? _bf16, _f16;

    public TKernel Get(bool bf16) => bf16 ? _bf16 ??= loadBf16() : _f16 ??= loadF16();
}
