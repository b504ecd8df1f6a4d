using NativeVae.Kernels.Gpu;
using NativeVae.Tensors;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Kernels;

/// <summary>One GroupNorm case over [N, C, H, W].</summary>
public sealed record GroupNormCase(string Name, int Batch, int Channels, int Height, int Width, int Groups, bool Silu)
{
    public override string ToString() => Name;
}

/// <summary>Every GroupNorm kernel version against the double reference: output and the (mean, rstd) side output.</summary>
public sealed class GroupNormKernelTests
{
    private const ulong Seed = 11;
    private const float Eps = 1e-6f;
    private const double AbsTolerance = 1e-5;
    private const double RelTolerance = 1e-5;

    /// <summary>Inputs sit around this offset so that a one-pass (E[x^2] - mean^2) variance would lose digits.</summary>
    private const float InputOffset = 5f;

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
    ];

    private static IEnumerable<TestCaseData> Cases() =>
        from version in Enum.GetValues<GroupNormVersion>()
        from shape in Shapes
        select new TestCaseData(version, shape).SetArgDisplayNames(version.ToString(), shape.Name);

    [TestCaseSource(nameof(Cases))]
    public void MatchesReference(GroupNormVersion version, GroupNormCase c)
    {
        var backend = KernelBackends.For(version);
        var shape = TensorShape.Nchw(c.Batch, c.Channels, c.Height, c.Width);
        float[] x = SeededWeights.Uniform(Seed, c.Name + ".x", shape.ElementCount).Select(v => v * 2 + InputOffset).ToArray();
        float[] gamma = SeededWeights.Uniform(Seed, c.Name + ".gamma", c.Channels).Select(v => 1 + v / 4).ToArray();
        float[] beta = SeededWeights.Uniform(Seed, c.Name + ".beta", c.Channels).Select(v => v / 4).ToArray();
        var (expected, mean, rstd) = Reference.GroupNorm(x, c.Batch, c.Channels, c.Height * c.Width, c.Groups, Eps,
            gamma, beta, c.Silu);

        using var tx = backend.Upload(x, shape);
        using var tg = backend.Upload(gamma, new TensorShape(c.Channels));
        using var tb = backend.Upload(beta, new TensorShape(c.Channels));
        using var y = backend.GroupNorm(tx, tg, tb, c.Groups, Eps, c.Silu, out var stats);
        using var statsTensor = stats;
        var actual = new float[shape.ElementCount];
        backend.Download(y, actual);
        var actualStats = new float[c.Batch * c.Groups * 2];
        backend.Download(statsTensor, actualStats);

        string what = $"group_norm {version} {c.Name}";
        var statsShape = new TensorShape(c.Batch, c.Groups);
        NumericAssert.Close(Lane(actualStats, 0), mean, statsShape, AbsTolerance, RelTolerance, what + " mean");
        NumericAssert.Close(Lane(actualStats, 1), rstd, statsShape, AbsTolerance, RelTolerance, what + " rstd");
        NumericAssert.Close(actual, expected, shape, AbsTolerance, RelTolerance, what);
    }

    [TestCaseSource(nameof(Cases))]
    public void StatisticsGiveMeanAndSumOfSquaredDeviations(GroupNormVersion version, GroupNormCase c)
    {
        var backend = KernelBackends.For(version);
        var shape = TensorShape.Nchw(c.Batch, c.Channels, c.Height, c.Width);
        float[] x = SeededWeights.Uniform(Seed, c.Name + ".x", shape.ElementCount).Select(v => v * 2 + InputOffset).ToArray();
        var (_, mean, rstd) = Reference.GroupNorm(x, c.Batch, c.Channels, c.Height * c.Width, c.Groups, 0,
            new float[c.Channels], new float[c.Channels], false);
        int count = c.Channels / c.Groups * c.Height * c.Width;
        // With eps 0, rstd = 1 / sqrt(M2 / count).
        double[] m2 = rstd.Select(r => count / (r * r)).ToArray();

        using var tx = backend.Upload(x, shape);
        using var stats = backend.GroupNormStatistics(tx, c.Groups);
        Assert.That(stats.Shape, Is.EqualTo(new TensorShape(c.Batch, c.Groups, 2)));
        var actual = new float[c.Batch * c.Groups * 2];
        backend.Download(stats, actual);
        string what = $"group_norm_statistics {version} {c.Name}";
        var statsShape = new TensorShape(c.Batch, c.Groups);
        NumericAssert.Close(Lane(actual, 0), mean, statsShape, AbsTolerance, RelTolerance, what + " mean");
        NumericAssert.Close(Lane(actual, 1), m2, statsShape, AbsTolerance, RelTolerance, what + " M2");
    }

    [TestCaseSource(nameof(Shapes))]
    public void ChannelAffineScalesEachBatchChannel(GroupNormCase c)
    {
        var backend = KernelBackends.Plain;
        var shape = TensorShape.Nchw(c.Batch, c.Channels, c.Height, c.Width);
        int rows = c.Batch * c.Channels, spatial = c.Height * c.Width;
        float[] x = SeededWeights.Uniform(Seed, c.Name + ".x", shape.ElementCount);
        float[] scale = SeededWeights.Uniform(Seed, c.Name + ".scale", rows).Select(v => 1 + v).ToArray();
        float[] shift = SeededWeights.Uniform(Seed, c.Name + ".shift", rows);
        var expected = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double v = (double)x[i] * scale[i / spatial] + shift[i / spatial];
            expected[i] = c.Silu ? Reference.Silu(v) : v;
        }
        var affineShape = new TensorShape(c.Batch, c.Channels);
        using var tx = backend.Upload(x, shape);
        using var ts = backend.Upload(scale, affineShape);
        using var th = backend.Upload(shift, affineShape);
        using var y = backend.ChannelAffine(tx, ts, th, c.Silu);
        var actual = new float[x.Length];
        backend.Download(y, actual);
        NumericAssert.Close(actual, expected, shape, AbsTolerance, RelTolerance, $"channel_affine {c.Name}");
    }

    /// <summary>Every second value of the interleaved (mean, rstd) pairs, from <paramref name="lane"/>.</summary>
    private static float[] Lane(float[] pairs, int lane) =>
        Enumerable.Range(0, pairs.Length / 2).Select(i => pairs[2 * i + lane]).ToArray();
}
