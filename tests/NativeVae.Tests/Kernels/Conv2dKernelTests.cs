using NativeVae.Backends;
using NativeVae.Kernels.Gpu;
using NativeVae.Tensors;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Kernels;

/// <summary>One conv2d case: geometry, padding (top, bottom, left, right), fusions.</summary>
public sealed record Conv2dCase(string Name, int Batch, int InChannels, int Height, int Width, int OutChannels,
    int Kernel, int Stride, int PadTop, int PadBottom, int PadLeft, int PadRight, bool Upsample2x, bool Bias, bool Residual)
{
    public override string ToString() => Name;
}

/// <summary>Every conv2d kernel version against the double reference, on ILGPU's CPU accelerator.</summary>
public sealed class Conv2dKernelTests
{
    private const ulong Seed = 7;
    private const double AbsTolerance = 1e-5;
    private const double RelTolerance = 1e-5;

    // Channel counts straddle the Direct block (8) and the SharedTile tiles (64); columns straddle 64 too.
    private static readonly Conv2dCase[] Shapes =
    [
        new("3x3 s1 p1, 7x5, 3->5, bias", 1, 3, 7, 5, 5, 3, 1, 1, 1, 1, 1, false, true, false),
        new("3x3 s1 p1, batch 2, 6x9, 13->19, bias+residual", 2, 13, 6, 9, 19, 3, 1, 1, 1, 1, 1, false, true, true),
        new("3x3 s1 p1, 1x1 image, 4->3", 1, 4, 1, 1, 3, 3, 1, 1, 1, 1, 1, false, true, false),
        new("3x3 s1 p1, 5x4, 96->96, residual", 1, 96, 5, 4, 96, 3, 1, 1, 1, 1, 1, false, false, true),
        new("3x3 s2 pad right/bottom 1 (Downsample2D), 7x6, 5->9", 1, 5, 7, 6, 9, 3, 2, 0, 1, 0, 1, false, true, false),
        new("3x3 s2 pad right/bottom 1 (Downsample2D), batch 2, 8x8, 16->16", 2, 16, 8, 8, 16, 3, 2, 0, 1, 0, 1, false, true, false),
        new("3x3 s2 p1 (TAESD), 8x5, 6->4, no bias", 1, 6, 8, 5, 4, 3, 2, 1, 1, 1, 1, false, false, false),
        new("3x3 s1 pad top 2, bottom 0, left 0, right 1, 5x6, 4->6", 1, 4, 5, 6, 6, 3, 1, 2, 0, 0, 1, false, true, false),
        new("3x3 s2 pad top 0, bottom 1, left 1, right 0, upsample2x, 3x4, 5->3", 1, 5, 3, 4, 3, 3, 2, 0, 1, 1, 0, true, false, false),
        new("1x1, batch 2, 5x3, 96->70, bias+residual", 2, 96, 5, 3, 70, 1, 1, 0, 0, 0, 0, false, true, true),
        new("1x1, 1x1 image, 8->12", 1, 8, 1, 1, 12, 1, 1, 0, 0, 0, 0, false, true, false),
        new("upsample2x + 3x3 s1 p1, 4x3, 7->10, bias", 1, 7, 4, 3, 10, 3, 1, 1, 1, 1, 1, true, true, false),
        new("upsample2x + 3x3 s1 p1, 1x1 image, batch 2, 3->5, bias+residual", 2, 3, 1, 1, 5, 3, 1, 1, 1, 1, 1, true, true, true),
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from version in Enum.GetValues<Conv2dVersion>()
        from shape in Shapes
        select new TestCaseData(version, shape).SetArgDisplayNames(version.ToString(), shape.Name);

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(Conv2dVersion version, Conv2dCase c)
    {
        var backend = KernelBackends.For(version);
        var spec = new Conv2dSpec(c.Stride, c.PadTop, c.PadBottom, c.PadLeft, c.PadRight, c.Upsample2x);
        int outHeight = spec.OutputHeight(c.Height, c.Kernel);
        int outWidth = spec.OutputWidth(c.Width, c.Kernel);
        var inShape = TensorShape.Nchw(c.Batch, c.InChannels, c.Height, c.Width);
        var weightShape = TensorShape.Nchw(c.OutChannels, c.InChannels, c.Kernel, c.Kernel);
        var outShape = TensorShape.Nchw(c.Batch, c.OutChannels, outHeight, outWidth);

        float[] x = SeededWeights.Uniform(Seed, c.Name + ".x", inShape.ElementCount);
        // Weights at PyTorch's init scale keep outputs O(1), as in a real network.
        float fanInBound = 1f / MathF.Sqrt(c.InChannels * c.Kernel * c.Kernel);
        float[] weight = SeededWeights.Uniform(Seed, c.Name + ".weight", weightShape.ElementCount)
            .Select(w => w * fanInBound).ToArray();
        float[]? bias = c.Bias ? SeededWeights.Uniform(Seed, c.Name + ".bias", c.OutChannels) : null;
        float[]? residual = c.Residual ? SeededWeights.Uniform(Seed, c.Name + ".residual", outShape.ElementCount) : null;

        var geometry = new Reference.ConvGeometry(c.Batch, c.InChannels, c.Height, c.Width, c.OutChannels, c.Kernel,
            c.Stride, c.PadTop, c.PadLeft, outHeight, outWidth, c.Upsample2x);
        double[] expected = Reference.Conv2d(geometry, x, weight, bias, residual);

        using var tx = backend.Upload(x, inShape);
        using var tw = backend.Upload(weight, weightShape);
        using var tb = bias is null ? null : backend.Upload(bias, new TensorShape(c.OutChannels));
        using var tr = residual is null ? null : backend.Upload(residual, outShape);
        using var y = backend.Conv2d(tx, tw, tb, spec, tr);
        Assert.That(y.Shape, Is.EqualTo(outShape), "conv2d output shape");
        var actual = new float[outShape.ElementCount];
        backend.Download(y, actual);
        NumericAssert.Close(actual, expected, outShape, AbsTolerance, RelTolerance, $"conv2d {version} {c.Name}");
    }
}
