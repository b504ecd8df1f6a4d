using ILGPU;
using ILGPU.Runtime;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels;
using NativeVae.Kernels.Gpu;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// GroupNorm over 16-bit NHWC (the tensor-core path's layout): per-tile moments, their merge and the full-grid
/// normalisation against the fp64 reference of the same 16-bit input, in bf16 and fp16, with padded channels, a
/// partial last tile, two images and SiLU; on ILGPU's CPU accelerator, and on CUDA where there is a GPU.
/// </summary>
public sealed class GroupNormNhwcTests
{
    public sealed record Case(string Name, int Batch, int Channels, int Height, int Width, int Groups, int PixelsPerTile, bool Silu)
    {
        public override string ToString() => Name;
    }

    private static readonly Case[] Cases =
    [
        // 40 channels padded to 48, 5 x 7 = 35 pixels in tiles of 16: a partial last tile.
        new("C=40 in 8 groups, partial tile, silu", 2, 40, 5, 7, 8, 16, true),
        // SD's 32 groups of 2 channels, one tile per image at the default tile.
        new("C=64 in 32 groups", 1, 64, 6, 6, 32, GroupNormNhwcGpu.DefaultPixelsPerTile, false),
    ];

    private static IEnumerable<TestCaseData> AcceleratorsFormatsAndCases() =>
        from accelerator in TensorCoreAccelerators.Names
        from bf16 in new[] { true, false }
        from c in Cases
        select new TestCaseData(accelerator, bf16, c).SetArgDisplayNames(accelerator, bf16 ? "bf16" : "fp16", c.Name);

    private const float Eps = 1e-6f;
    /// <summary>One unit in the last place of the stored output, relative, plus an absolute floor near zero.</summary>
    private const double Bf16Ulp = 1.0 / 128;
    private const double F16Ulp = 1.0 / 1024;
    private const double AbsoluteTolerance = 1e-3;
    private const double StatisticsTolerance = 1e-5;

    [TestCaseSource(nameof(AcceleratorsFormatsAndCases))]
    public void MatchesTheReference(string acceleratorName, bool bf16, Case c)
    {
        var accelerator = TensorCoreAccelerators.Get(acceleratorName);
        if (bf16) Run<Bf16Format>(accelerator, bf16, c, Bf16Ulp);
        else Run<F16Format>(accelerator, bf16, c, F16Ulp);
    }

    private static void Run<TFormat>(Accelerator accelerator, bool bf16, Case c, double relativeTolerance)
        where TFormat : struct, IHalfFormat
    {
        var format = default(TFormat);
        var random = new Random(c.Channels + (bf16 ? 1 : 0));
        int pixels = c.Height * c.Width;
        // An offset per channel, so that the mean matters and a wrong group shows.
        var x = new float[c.Batch * c.Channels * pixels];
        for (int i = 0; i < x.Length; i++)
            x[i] = format.Widen(format.Narrow((float)(random.NextDouble() * 2 - 1) + i / pixels % c.Channels * 0.25f));
        var gamma = Enumerable.Range(0, c.Channels).Select(_ => (float)(random.NextDouble() + 0.5)).ToArray();
        var beta = Enumerable.Range(0, c.Channels).Select(_ => (float)(random.NextDouble() - 0.5)).ToArray();
        var (expected, mean, rstd) = Reference.GroupNorm(x, c.Batch, c.Channels, pixels, c.Groups, Eps, gamma, beta, c.Silu);

        int stride = NhwcPacking.PaddedChannels(c.Channels);
        var p = new GroupNormNhwcParams
        {
            Batch = c.Batch,
            Pixels = pixels,
            ChannelStride = stride,
            Channels = c.Channels,
            Groups = c.Groups,
            PixelsPerTile = c.PixelsPerTile,
            Eps = Eps,
            FuseSilu = c.Silu ? 1 : 0,
        };
        var nhwc = NhwcPacking.ToNhwc<TFormat>(x, c.Batch, c.Channels, c.Height, c.Width);
        using var input = accelerator.Allocate1D(nhwc);
        using var gammaBuffer = accelerator.Allocate1D(gamma);
        using var betaBuffer = accelerator.Allocate1D(beta);
        using var moments = accelerator.Allocate1D<float>(GroupNormNhwcLauncher.MomentsLength(p));
        using var stats = accelerator.Allocate1D<float>(c.Batch * c.Groups * 2);
        // Garbage in the output, so that a value the kernel fails to write shows.
        using var output = accelerator.Allocate1D(Enumerable.Repeat(0x7E00_7E00u, nhwc.Length / 2).ToArray());
        var launcher = new GroupNormNhwcLauncher(accelerator, accelerator.DefaultStream, new GroupNormLauncher(accelerator, accelerator.DefaultStream));
        launcher.Statistics(bf16, p, input.View, moments.View, stats.View);
        launcher.Normalize(bf16, p, input.View.AsContiguous().Cast<uint>(), gammaBuffer.View, betaBuffer.View, stats.View, output.View);
        accelerator.Synchronize();

        var expectedStats = new double[c.Batch * c.Groups * 2];
        for (int g = 0; g < mean.Length; g++)
        {
            expectedStats[2 * g] = mean[g];
            expectedStats[2 * g + 1] = rstd[g];
        }
        NumericAssert.Close(stats.GetAsArray1D(), expectedStats, new TensorShape(c.Batch, c.Groups, 2),
            StatisticsTolerance, StatisticsTolerance, $"NHWC group statistics, {c.Name}");

        var stored = NhwcPacking.FromWords(output.GetAsArray1D());
        var actual = NhwcPacking.FromNhwc<TFormat>(stored, c.Batch, c.Channels, c.Height, c.Width);
        NumericAssert.Close(actual, expected, new TensorShape(c.Batch, c.Channels, c.Height, c.Width),
            AbsoluteTolerance, relativeTolerance, $"NHWC group_norm {(bf16 ? "bf16" : "fp16")}, {c.Name}");
        for (int pixel = 0; pixel < c.Batch * pixels; pixel++)
        for (int channel = c.Channels; channel < stride; channel++)
            Assert.That(stored[pixel * stride + channel], Is.Zero, $"padded channel {channel} of pixel {pixel} is not zero");
    }
}
