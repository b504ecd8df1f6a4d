using NativeVae.Kernels.Gpu;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Kernels;

/// <summary>One conv2d case: geometry, padding (top, bottom, left, right), fusions; seeded inputs and a runner.</summary>
public sealed record Conv2dCase(string Name, int Batch, int InChannels, int Height, int Width, int OutChannels,
    int Kernel, int Stride, int PadTop, int PadBottom, int PadLeft, int PadRight, bool Upsample2x, bool Bias, bool Residual)
{
    private const ulong Seed = 7;

    public override string ToString() => Name;

    internal Conv2dSpec Spec => new(Stride, PadTop, PadBottom, PadLeft, PadRight, Upsample2x);

    internal TensorShape InShape => TensorShape.Nchw(Batch, InChannels, Height, Width);

    internal TensorShape WeightShape => TensorShape.Nchw(OutChannels, InChannels, Kernel, Kernel);

    internal TensorShape OutShape => TensorShape.Nchw(Batch, OutChannels, Spec.OutputHeight(Height, Kernel), Spec.OutputWidth(Width, Kernel));

    internal float[] X => SeededWeights.Uniform(Seed, Name + ".x", InShape.ElementCount);

    // Weights at PyTorch's init scale keep outputs O(1), as in a real network.
    internal float[] Weight => SeededWeights.Uniform(Seed, Name + ".weight", WeightShape.ElementCount)
        .Select(w => w / MathF.Sqrt(InChannels * Kernel * Kernel)).ToArray();

    internal float[]? BiasValues => Bias ? SeededWeights.Uniform(Seed, Name + ".bias", OutChannels) : null;

    internal float[]? ResidualValues => Residual ? SeededWeights.Uniform(Seed, Name + ".residual", OutShape.ElementCount) : null;

    internal double[] Expected() => Reference.Conv2d(
        Reference.ConvGeometry.Of(Batch, InChannels, Height, Width, OutChannels, Kernel, Spec), X, Weight, BiasValues, ResidualValues);

    /// <summary>Uploads the inputs once and runs the conv <paramref name="calls"/> times on them; the outputs in order.</summary>
    /// <param name="prepared">run on the weight as models do, prepared once by <see cref="IBackend.PrepareConvWeight"/>.</param>
    internal float[][] Run(IBackend backend, int calls = 1, bool prepared = false)
    {
        using var x = backend.Upload(X, InShape);
        var uploaded = backend.Upload(Weight, WeightShape);
        using var weight = prepared ? backend.PrepareConvWeight(uploaded, Spec) : uploaded;
        using var bias = BiasValues is { } b ? backend.Upload(b, new TensorShape(OutChannels)) : null;
        using var residual = ResidualValues is { } r ? backend.Upload(r, OutShape) : null;
        var outputs = new float[calls][];
        for (int call = 0; call < calls; call++)
        {
            using var y = backend.Conv2d(x, weight, bias, Spec, residual);
            Assert.That(y.Shape, Is.EqualTo(OutShape), $"conv2d {Name}: output shape");
            outputs[call] = new float[y.ElementCount];
            backend.Download(y, outputs[call]);
        }
        return outputs;
    }
}

/// <summary>Every conv2d kernel version of every backend against the double reference.</summary>
public sealed class Conv2dKernelTests
{
    internal const double AbsTolerance = 1e-5;
    internal const double RelTolerance = 1e-5;

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
        // Columns against the CPU vector widths (16, 8, 4 lanes) and its column tiles; K = 5; no padding.
        new("3x3 s1 p1, batch 2, 9x20, 16->17, residual", 2, 16, 9, 20, 17, 3, 1, 1, 1, 1, 1, false, false, true),
        new("3x3 s1 p1, 6x10, 96->8, bias", 1, 96, 6, 10, 8, 3, 1, 1, 1, 1, 1, false, true, false),
        new("3x3 s1 p1, 3x300 (long rows), 4->5, bias+residual", 1, 4, 3, 300, 5, 3, 1, 1, 1, 1, 1, false, true, true),
        new("3x3 s2 p1, batch 2, 8x7, 5->6, bias+residual", 2, 5, 8, 7, 6, 3, 2, 1, 1, 1, 1, false, true, true),
        new("5x5 s1 p2, 8x9, 3->4, bias", 1, 3, 8, 9, 4, 5, 1, 2, 2, 2, 2, false, true, false),
        new("3x3 s1 no padding, 6x7, 4->3", 1, 4, 6, 7, 3, 3, 1, 0, 0, 0, 0, false, false, false),
    ];

    internal static IEnumerable<Conv2dCase> Cases => Shapes;

    private static IEnumerable<TestCaseData> OnEveryBackend() => KernelBackends.Cases(KernelBackends.EveryVersion, Shapes);

    [TestCaseSource(nameof(OnEveryBackend))]
    public void MatchesReference(string backendName, Conv2dCase c)
    {
        float[] actual = c.Run(KernelBackends.Get(backendName))[0];
        NumericAssert.Close(actual, c.Expected(), c.OutShape, AbsTolerance, RelTolerance, $"conv2d {backendName} {c.Name}");
    }
}
