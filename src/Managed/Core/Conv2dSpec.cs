namespace NativeVae.Core;

/// <summary>
/// Geometry of a 2-D convolution. The kernel size comes from the weight <c>[Cout, Cin, K, K]</c>.
/// With <see cref="Upsample2x"/> the input is read as if nearest-neighbour upsampled 2x first
/// (diffusers' <c>Upsample2D</c>: interpolate then conv), without materialising the upsampled tensor. With
/// <see cref="Relu"/> the output is <c>relu(conv + bias + residual)</c>, written once: only a backend whose
/// <see cref="BackendCapabilities.FusesConvRelu"/> is set is asked for it (the model layer runs ReLU as its own op
/// on any other).
/// </summary>
internal readonly record struct Conv2dSpec(
    int Stride,
    int PadTop,
    int PadBottom,
    int PadLeft,
    int PadRight,
    bool Upsample2x = false,
    bool Relu = false)
{
    /// <summary>3x3 (or KxK) stride 1, pad 1 on every side: output size = input size.</summary>
    public static readonly Conv2dSpec Same = new(1, 1, 1, 1, 1);

    /// <summary>1x1 convolution (also a Linear over channels).</summary>
    public static readonly Conv2dSpec Pointwise = new(1, 0, 0, 0, 0);

    /// <summary>diffusers' <c>Downsample2D</c> with padding 0: zero pad right 1 and bottom 1, then 3x3 stride 2.</summary>
    public static readonly Conv2dSpec DownsampleAsymmetric = new(2, 0, 1, 0, 1);

    /// <summary>TAESD's downsampling conv: 3x3, stride 2, pad 1 on every side.</summary>
    public static readonly Conv2dSpec Stride2Pad1 = new(2, 1, 1, 1, 1);

    /// <summary>Nearest 2x upsample fused into a 3x3 stride 1 pad 1 conv.</summary>
    public static readonly Conv2dSpec UpsampleSame = new(1, 1, 1, 1, 1, Upsample2x: true);

    /// <summary>Output height for an input of height <paramref name="height"/> and a KxK kernel.</summary>
    public int OutputHeight(int height, int kernel) => OutputSize(height, kernel, PadTop, PadBottom);

    /// <summary>Output width for an input of width <paramref name="width"/> and a KxK kernel.</summary>
    public int OutputWidth(int width, int kernel) => OutputSize(width, kernel, PadLeft, PadRight);

    private int OutputSize(int size, int kernel, int padBefore, int padAfter)
    {
        int virtualSize = Upsample2x ? 2 * size : size;
        int span = virtualSize + padBefore + padAfter - kernel;
        return span < 0 ? 0 : span / Stride + 1;
    }
}
