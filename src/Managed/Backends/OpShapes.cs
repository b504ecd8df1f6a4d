using NativeVae.Tensors;

namespace NativeVae.Backends;

/// <summary>
/// The argument checks and output shapes of the ops in <see cref="IBackend"/>, one place for every backend
/// (IlgpuBackend still carries its own copy; TODO: move it onto these).
/// </summary>
internal static class OpShapes
{
    public const int RgbChannels = 3;

    public static void RequireRank4(Tensor t, string what)
    {
        if (t.Shape.Rank != 4)
            throw new ArgumentException($"{what} must be [N, C, H, W], got {t.Shape}");
    }

    /// <summary>Checks a convolution's operands; returns the output shape.</summary>
    public static TensorShape Conv2d(Tensor x, Tensor w, Tensor? bias, Conv2dSpec spec, Tensor? residual)
    {
        RequireRank4(x, "conv2d input");
        RequireRank4(w, "conv2d weight");
        int kernel = w.Shape[2];
        if (w.Shape[3] != kernel)
            throw new NotSupportedException($"conv2d weight {w.Shape}: only square kernels are supported");
        if (kernel < 1)
            throw new ArgumentException($"conv2d weight {w.Shape}: the kernel must be at least 1x1");
        if (w.Shape[1] != x.Shape.C)
            throw new ArgumentException($"conv2d weight {w.Shape} expects {w.Shape[1]} input channels, input is {x.Shape}");
        if (spec.Stride < 1)
            throw new ArgumentException($"conv2d stride {spec.Stride} must be at least 1", nameof(spec));
        if (spec.PadTop < 0 || spec.PadBottom < 0 || spec.PadLeft < 0 || spec.PadRight < 0)
            throw new ArgumentException($"conv2d padding {spec} must not be negative", nameof(spec));
        int cout = w.Shape[0];
        var outShape = TensorShape.Nchw(x.Shape.N, cout, spec.OutputHeight(x.Shape.H, kernel), spec.OutputWidth(x.Shape.W, kernel));
        if (bias is not null && (bias.Shape.Rank != 1 || bias.Shape[0] != cout))
            throw new ArgumentException($"conv2d bias {bias.Shape} does not match {cout} output channels");
        if (residual is not null && residual.Shape != outShape)
            throw new ArgumentException($"conv2d residual {residual.Shape} does not match the output {outShape}");
        return outShape;
    }

    public static void GroupNorm(Tensor x, Tensor gamma, Tensor beta, int groups)
    {
        RequireRank4(x, "group_norm input");
        int c = x.Shape.C;
        if (groups <= 0 || c % groups != 0)
            throw new ArgumentException($"group_norm: {groups} groups do not divide {c} channels of {x.Shape}", nameof(groups));
        if (gamma.ElementCount != c || beta.ElementCount != c)
            throw new ArgumentException($"group_norm affine {gamma.Shape}/{beta.Shape} does not match {c} channels");
    }

    public static void Attention(Tensor q, Tensor k, Tensor v)
    {
        RequireRank4(q, "attention q");
        if (k.Shape != q.Shape || v.Shape != q.Shape)
            throw new ArgumentException($"attention q {q.Shape}, k {k.Shape}, v {v.Shape} must have one shape");
    }

    public static void SameShape(Tensor a, Tensor b, string op)
    {
        if (a.Shape != b.Shape)
            throw new ArgumentException($"{op} of tensors with shapes {a.Shape} and {b.Shape}");
    }

    public static TensorShape Image(int byteCount, int batch, int height, int width)
    {
        if (batch < 0 || height < 0 || width < 0)
            throw new ArgumentException($"image size {batch}x{height}x{width} must not be negative");
        long expected = checked((long)batch * height * width * RgbChannels);
        if (byteCount != expected)
            throw new ArgumentException($"image bytes: got {byteCount}, expected {batch}x{height}x{width}x3 = {expected}", "rgb");
        return TensorShape.Nchw(batch, RgbChannels, height, width);
    }

    public static void ImageTensor(Tensor x, int byteCount)
    {
        RequireRank4(x, "image tensor");
        if (x.Shape.C != RgbChannels)
            throw new ArgumentException($"image tensor {x.Shape} must have 3 channels");
        if (byteCount != x.ElementCount)
            throw new ArgumentException($"image bytes: got {byteCount}, tensor {x.Shape} needs {x.ElementCount}", "rgb");
    }
}
