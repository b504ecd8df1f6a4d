using ILGPU;

namespace NativeVae.Kernels.Gpu;

/// <summary>
/// How every ILGPU context of NativeVae compiles kernels: the backend's and the offline ptxas check's, so the check
/// sees the code a GPU runs.
/// </summary>
internal static class KernelCompilation
{
    /// <summary>
    /// Algorithms on, and ILGPU's O2: at O1 the constant test behind <c>CudaAsm.IsSupported</c> reaches the PTX
    /// unfolded, the C# fallbacks of the tensor-core intrinsics stay beside the inline PTX, and ptxas then keeps
    /// the operands of every <c>mma.sync</c> in local memory (a 1280-byte stack frame in the conv kernel).
    /// </summary>
    public static Context.Builder Configure(Context.Builder builder) =>
        builder.Default().EnableAlgorithms().Optimize(OptimizationLevel.O2);
}
