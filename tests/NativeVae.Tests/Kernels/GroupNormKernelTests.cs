using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Kernels;

/// <summary>One GroupNorm case over [N, C, H, W]; inputs are spread over [-2, 2] around <paramref name="Offset"/>.</summary>
public sealed record GroupNormCase(string Name, int Batch, int Channels, int Height, int Width, int Groups, bool Silu,
    float Offset = GroupNormCase.DefaultOffset)
{
    /// <summary>Inputs sit around this offset so that a one-pass (E[x^2] - mean^2) variance would lose digits.</summary>
    public const float DefaultOffset = 5f;

    private const ulong Seed = 11;

    public override string ToString() => Name;

    internal TensorShape Shape => TensorShape.Nchw(Batch, Channels, Height, Width);

    internal float[] X => SeededWeights.Uniform(Seed, Name + ".x", Shape.ElementCount).Select(v => v * 2 + Offset).ToArray();

    internal float[] Gamma => SeededWeights.Uniform(Seed, Name + ".gamma", Channels).Select(v => 1 + v / 4).ToArray();

    internal float[] Beta => SeededWeights.Uniform(Seed, Name + ".beta", Channels).Select(v => v / 4).ToArray();
}

/// <summary>
/// Every GroupNorm kernel version of every backend against the double reference: output and the (mean, rstd) side
/// output; the statistics and channel-affine halves that exact tiling splits it into, the same way.
/// </summary>
public sealed class GroupNormKernelTests
{
    private const ulong Seed = 11;
    private const float Eps = 1e-6f;
    private const double AbsTolerance = 1e-5;
    private const double RelTolerance = 1e-5;

    // GroupReduce uses 256 threads per group: counts below, at and far above it.
    private static readonly GroupNormCase[] Shapes =
    [
        new("1x1 image, C=8, groups 4", 1, 8, 1, 1, 4, false),
        new("7x5, batch 2, C=32, groups 8, silu", 2, 32, 7, 5, 8, true),
        new("3x4, C=96, groups 32", 1, 96, 3, 4, 32, false),
        new("5x3, C=64, groups 32, silu", 1, 64, 5, 3, 32, true),
        new("9x2, batch 2, C=12, groups 4", 2, 12, 9, 2, 4, false),
        new("17x19, C=16, groups 4, silu (1292 per group)", 1, 16, 17, 19, 4, true),
        new("8x8, C=4, groups 1 (256 per group)", 1, 4, 8, 8, 1, false),
        new("16x16, C=32, groups 2, silu, mean 50 (4096 per group)", 1, 32, 16, 16, 2, true, 50f),
        new("33x17, batch 2, C=4, groups 2, mean -3 (1122 per group)", 2, 4, 33, 17, 2, false, -3f),
    ];

    private static IEnumerable<TestCaseData> OnEveryVersion() => KernelBackends.Cases(KernelBackends.EveryVersion, Shapes);

    private static IEnumerable<TestCaseData> OnEveryBackend() => KernelBackends.Cases(KernelBackends.EveryBackend, Shapes);

    internal static IEnumerable<GroupNormCase> Cases => Shapes;

    [TestCaseSource(nameof(OnEveryVersion))]
    public void MatchesReference(string backendName, GroupNormCase c)
    {
        var backend = KernelBackends.Get(backendName);
        float[] x = c.X, gamma = c.Gamma, beta = c.Beta;
        var (expected, mean, rstd) = Reference.GroupNorm(x, c.Batch, c.Channels, c.Height * c.Width, c.Groups, Eps,
            gamma, beta, c.Silu);

        using var tx = backend.Upload(x, c.Shape);
        using var tg = backend.Upload(gamma, new TensorShape(c.Channels));
        using var tb = backend.Upload(beta, new TensorShape(c.Channels));
        using var y = KernelBackends.GroupNormWithStatistics(backend, tx, tg, tb, c.Groups, Eps, c.Silu, out var stats);
        using var statsTensor = stats;
        var actual = new float[c.Shape.ElementCount];
        backend.Download(y, actual);
        var actualStats = new float[c.Batch * c.Groups * 2];
        backend.Download(statsTensor, actualStats);

        string what = $"group_norm {backendName} {c.Name}";
        var statsShape = new TensorShape(c.Batch, c.Groups);
        NumericAssert.Close(Lane(actualStats, 0), mean, statsShape, AbsTolerance, RelTolerance, what + " mean");
        NumericAssert.Close(Lane(actualStats, 1), rstd, statsShape, AbsTolerance, RelTolerance, what + " rstd");
        NumericAssert.Close(actual, expected, c.Shape, AbsTolerance, RelTolerance, what);
    }

    [TestCaseSource(nameof(OnEveryVersion))]
    public void StatisticsGiveMeanAndSumOfSquaredDeviations(string backendName, GroupNormCase c)
    {
        var backend = KernelBackends.Get(backendName);
        float[] x = c.X;
        var (mean, m2) = Reference.GroupMoments(x, c.Batch, c.Channels, c.Height * c.Width, c.Groups);

        using var tx = backend.Upload(x, c.Shape);
        using var stats = backend.GroupNormStatistics(tx, c.Groups);
        Assert.That(stats.Shape, Is.EqualTo(new TensorShape(c.Batch, c.Groups, 2)));
        var actual = new float[c.Batch * c.Groups * 2];
        backend.Download(stats, actual);
        string what = $"group_norm_statistics {backendName} {c.Name}";
        var statsShape = new TensorShape(c.Batch, c.Groups);
        NumericAssert.Close(Lane(actual, 0), mean, statsShape, AbsTolerance, RelTolerance, what + " mean");
        int count = c.Channels / c.Groups * c.Height * c.Width;
        NumericAssert.Close(Lane(actual, 1), m2, statsShape, AbsTolerance, M2RelTolerance(count), what + " M2");
    }

    [TestCaseSource(nameof(OnEveryBackend))]
    public void ChannelAffineScalesEachBatchChannel(string backendName, GroupNormCase c)
    {
        var backend = KernelBackends.Get(backendName);
        int rows = c.Batch * c.Channels;
        float[] x = SeededWeights.Uniform(Seed, c.Name + ".x", c.Shape.ElementCount);
        float[] scale = SeededWeights.Uniform(Seed, c.Name + ".scale", rows).Select(v => 1 + v).ToArray();
        float[] shift = SeededWeights.Uniform(Seed, c.Name + ".shift", rows);
        double[] expected = Reference.ChannelAffine(x, c.Height * c.Width, scale, shift, c.Silu);
        var affineShape = new TensorShape(c.Batch, c.Channels);
        using var tx = backend.Upload(x, c.Shape);
        using var ts = backend.Upload(scale, affineShape);
        using var th = backend.Upload(shift, affineShape);
        using var y = backend.ChannelAffine(tx, ts, th, c.Silu);
        var actual = new float[x.Length];
        backend.Download(y, actual);
        NumericAssert.Close(actual, expected, c.Shape, AbsTolerance, RelTolerance, $"channel_affine {backendName} {c.Name}");
    }

    /// <summary>
    /// M2 is a sum of <paramref name="count"/> fp32 squares. Summed in one lane (the CPU backend's scalar path) its
    /// rounding error walks like sqrt(count) units of fp32 roundoff: allow four times that, never less than
    /// <see cref="RelTolerance"/> (so groups of up to ~1700 values are held to RelTolerance itself).
    /// </summary>
    private static double M2RelTolerance(int count) => Math.Max(RelTolerance, 4 * Math.Sqrt(count) * Fp32Roundoff);

    private const double Fp32Roundoff = 1.0 / (1 << 24);

    /// <summary>Every second value of the interleaved (mean, rstd) pairs, from <paramref name="lane"/>.</summary>
    private static float[] Lane(float[] pairs, int lane) =>
        Enumerable.Range(0, pairs.Length / 2).Select(i => pairs[2 * i + lane]).ToArray();
}
