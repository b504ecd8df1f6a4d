using ILGPU;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// STUBS: replaced by the real launchers (each in its XxxKernels.cs beside the kernels).
// Each launcher loads its kernels once, in the constructor, for one accelerator.

public sealed class Conv2dLauncher
{
    public Conv2dLauncher(Accelerator accelerator) { }

    public void Run(Conv2dVersion version, in Conv2dParams p, ArrayView<float> input, ArrayView<float> weight,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> output) => throw new NotImplementedException();
}

public sealed class GroupNormLauncher
{
    public GroupNormLauncher(Accelerator accelerator) { }

    /// <summary><paramref name="stats"/>: [Batch * Groups * 2] = (mean, rstd) per group, a side output.</summary>
    public void Run(GroupNormVersion version, in GroupNormParams p, ArrayView<float> input, ArrayView<float> gamma,
        ArrayView<float> beta, ArrayView<float> stats, ArrayView<float> output) => throw new NotImplementedException();
}

public sealed class AttentionLauncher
{
    public AttentionLauncher(Accelerator accelerator) { }

    public void Run(AttentionVersion version, in AttentionParams p, ArrayView<float> q, ArrayView<float> k,
        ArrayView<float> v, ArrayView<float> output) => throw new NotImplementedException();
}

public enum UnaryKind { Silu, Relu, TanhClamp3 }

public sealed class ElementwiseLauncher
{
    public ElementwiseLauncher(Accelerator accelerator) { }

    public void Unary(UnaryKind op, ArrayView<float> input, ArrayView<float> output) => throw new NotImplementedException();
    public void Add(ArrayView<float> a, ArrayView<float> b, ArrayView<float> output) => throw new NotImplementedException();
    public void ScaleShift(ArrayView<float> input, ArrayView<float> output, float scale, float shift) => throw new NotImplementedException();

    /// <summary>[N, H, W, 3] bytes to [N, 3, H, W] floats: pixel / 255 * scale + shift.</summary>
    public void ImageToTensor(ArrayView<byte> rgb, ArrayView<float> output, int batch, int height, int width, float scale, float shift) => throw new NotImplementedException();

    /// <summary>[N, 3, H, W] floats to [N, H, W, 3] bytes: round(clamp(x * scale + shift, 0, 1) * 255).</summary>
    public void TensorToImage(ArrayView<float> input, ArrayView<byte> rgb, int batch, int height, int width, float scale, float shift) => throw new NotImplementedException();
}
