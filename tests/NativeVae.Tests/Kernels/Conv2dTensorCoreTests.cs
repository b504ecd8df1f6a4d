using ILGPU;
using ILGPU.Runtime;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels;
using NativeVae.Kernels.Gpu;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// The tensor-core conv (implicit GEMM on mma.sync, NHWC 16-bit) on ILGPU's CPU accelerator, where the MMA runs as
/// its C# fallback, and on a CUDA GPU where there is one (the real HMMA), against the fp64 reference conv of the same 16-bit inputs: odd channel counts (padded), tails in
/// M, N and depth, stride 2, 1x1, the fused 2x upsample, bias and residual, in bf16 and fp16. Padded output
/// channels must come out exactly zero, since the next conv reads them. The epilogue's per-tile channel moments,
/// merged into GroupNorm statistics, must match statistics of the stored output computed in fp64.
/// </summary>
public sealed class Conv2dTensorCoreTests
{
    public sealed record Case(string Name, int Batch, int InChannels, int Height, int Width, int OutChannels,
        int Kernel, int Stride, int PadTop, int PadLeft, int OutHeight, int OutWidth, bool Upsample, bool Bias, bool Residual,
        int Groups, bool SubPixel = false, bool UnpaddedWeightRows = false, bool OutputF32 = false)
    {
        public override string ToString() => Name;
    }

    private static readonly Case[] Cases =
    [
        // Depth 9 * 16 = 144: four and a half 32-deep steps. 63 pixels: a tail in M.
        new("3x3 odd channels", 1, 5, 9, 7, 19, 3, 1, 1, 1, 9, 7, false, true, true, Groups: 1, UnpaddedWeightRows: true),
        // SD's downsample: stride 2, padding (0, 1, 0, 1) with bottom/right implied by the output size.
        new("3x3 stride 2", 1, 16, 9, 9, 16, 3, 2, 0, 0, 4, 4, false, true, false, Groups: 4),
        // 1x1 with depth 48: one and a half steps; two images.
        new("1x1 batch 2", 2, 48, 5, 3, 32, 1, 1, 0, 0, 5, 3, false, false, true, Groups: 8),
        // Nearest 2x upsample fused into the 3x3: the four sub-pixel phases all occur.
        new("3x3 upsampled", 1, 16, 4, 5, 16, 3, 1, 1, 1, 8, 10, true, true, false, Groups: 2),
        // The same conv as 4 sub-pixel phases of 2x2 taps, each phase its own tile of M.
        new("3x3 upsampled, sub-pixel phases", 1, 16, 4, 5, 16, 3, 1, 1, 1, 8, 10, true, true, true, Groups: 2, SubPixel: true),
        // 144 pixels per image and 144 channels: two tiles along M per image (the second partly filled) and two
        // along N; 1x1, so one depth step each.
        new("1x1 two tiles each way", 2, 16, 12, 12, 144, 1, 1, 0, 0, 12, 12, false, true, true, Groups: 36),
        // The decoder's last conv: 3 real channels stored as fp32 NCHW by the epilogue (no 16-bit rounding), two
        // images so that the NCHW batch offset shows; bias only as long as the real channels.
        new("3x3 to fp32 NCHW, 3 channels, batch 2", 2, 20, 7, 9, 3, 3, 1, 1, 1, 7, 9, false, true, false, Groups: 1,
            UnpaddedWeightRows: true, OutputF32: true),
    ];

    /// <summary>Every case in bf16; in fp16 the cases whose indexing differs (the formats share all but the MMA and rounding).</summary>
    private static IEnumerable<TestCaseData> FormatsAndCases() =>
        from accelerator in TensorCoreAccelerators.Names
        from test in Cases.Select(c => (Bf16: true, Case: c)).Concat(Cases.Take(FullF16Cases).Select(c => (Bf16: false, Case: c)))
        select new TestCaseData(accelerator, test.Bf16, test.Case).SetArgDisplayNames(accelerator, test.Bf16 ? "bf16" : "fp16", test.Case.Name);

    /// <summary>
    /// The emulated MMA costs a warp barrier per shuffle on the CPU accelerator, so fp16 (which shares every index
    /// with bf16 and differs in the MMA and the rounding) runs the first case only.
    /// </summary>
    private const int FullF16Cases = 1;

    [TestCaseSource(nameof(FormatsAndCases))]
    public void MatchesTheReference(string acceleratorName, bool bf16, Case c)
    {
        var accelerator = TensorCoreAccelerators.Get(acceleratorName);
        if (bf16) Run<Bf16Format>(accelerator, c, bf16, relativeTolerance: Bf16Ulp);
        else Run<F16Format>(accelerator, c, bf16, relativeTolerance: F16Ulp);
    }

    /// <summary>One unit in the last place, relative: the output is rounded once to 16 bits, after fp32 accumulation.</summary>
    private const double Bf16Ulp = 1.0 / 128;
    private const double F16Ulp = 1.0 / 1024;
    private const double AbsoluteTolerance = 1e-4;

    /// <summary>An fp32 output is not rounded to 16 bits: only the fp32 accumulation order differs from fp64.</summary>
    private const double Fp32Accumulation = 1e-5;

    /// <summary>Words of garbage after an fp32 output, which the kernel must leave alone.</summary>
    private const int GuardWords = 64;

    private static void Run<TFormat>(Accelerator accelerator, Case c, bool bf16, double relativeTolerance) where TFormat : struct, IHalfFormat
    {
        var format = default(TFormat);
        var random = new Random(c.Name.Length * 31 + (bf16 ? 1 : 0));
        // Values rounded to the format first, so the reference and the kernel multiply the same numbers.
        float[] Draw(int count, float scale) =>
            Enumerable.Range(0, count).Select(_ => format.Widen(format.Narrow((float)(random.NextDouble() * 2 - 1) * scale))).ToArray();
        var x = Draw(c.Batch * c.InChannels * c.Height * c.Width, 1f);
        // Sub-pixel phases sum up to four taps into one 16-bit weight: multiples of 1/64 keep those sums exact in
        // both formats, so the phases must reproduce the 9-tap reference to the output's rounding.
        var w = c.SubPixel
            ? Enumerable.Range(0, c.OutChannels * c.InChannels * c.Kernel * c.Kernel).Select(_ => random.Next(-32, 33) / 64f).ToArray()
            : Draw(c.OutChannels * c.InChannels * c.Kernel * c.Kernel, 0.5f);
        var bias = c.Bias ? Draw(c.OutChannels, 1f) : null;
        var residual = c.Residual ? Draw(c.Batch * c.OutChannels * c.OutHeight * c.OutWidth, 1f) : null;
        var geometry = new Reference.ConvGeometry(c.Batch, c.InChannels, c.Height, c.Width, c.OutChannels, c.Kernel,
            c.Stride, c.PadTop, c.PadLeft, c.OutHeight, c.OutWidth, c.Upsample);
        var expected = Reference.Conv2d(geometry, x, w, bias, residual);
        if (c.OutputF32) relativeTolerance = Fp32Accumulation;

        int inPadded = NhwcPacking.PaddedChannels(c.InChannels);
        int outPadded = NhwcPacking.PaddedChannels(c.OutChannels);
        var p = new Conv2dParams
        {
            Batch = c.Batch,
            InChannels = inPadded,
            InHeight = c.Height,
            InWidth = c.Width,
            OutChannels = outPadded,
            OutHeight = c.OutHeight,
            OutWidth = c.OutWidth,
            Kernel = c.Kernel,
            Stride = c.Stride,
            PadTop = c.PadTop,
            PadLeft = c.PadLeft,
            Upsample2x = c.Upsample ? 1 : 0,
            HasBias = c.Bias ? 1 : 0,
            HasResidual = c.Residual ? 1 : 0,
            HasMoments = 1,
            SubPixel = c.SubPixel ? 1 : 0,
        };
        using var input = accelerator.Allocate1D(NhwcPacking.ToWords(NhwcPacking.ToNhwc<TFormat>(x, c.Batch, c.InChannels, c.Height, c.Width)));
        var packed = c.SubPixel
            ? NhwcPacking.PackSubPixelWeights<TFormat>(w, c.OutChannels, c.InChannels)
            : NhwcPacking.PackWeights<TFormat>(w, c.OutChannels, c.InChannels, c.Kernel);
        if (c.UnpaddedWeightRows)
        {
            // The weight as a 16-bit NHWC tensor [Cout, K, K, CinPadded] stores it: no rows for the padded outputs.
            packed = packed[..(c.OutChannels * c.Kernel * c.Kernel * inPadded)];
            p.WeightRows = c.OutChannels;
        }
        using var weight = accelerator.Allocate1D(NhwcPacking.ToWords(packed));
        // An fp32 output reads the bias of the real channels only: it gets exactly those.
        using var biasBuffer = accelerator.Allocate1D(c.OutputF32 ? bias! : NhwcPacking.PadBias(bias ?? new float[c.OutChannels]));
        p.OutputF32 = c.OutputF32 ? 1 : 0;
        int outputWords = c.OutputF32
            ? c.Batch * c.OutChannels * c.OutHeight * c.OutWidth + GuardWords
            : c.Batch * c.OutHeight * c.OutWidth * outPadded / 2;
        using var residualBuffer = accelerator.Allocate1D(residual is null
            ? new uint[outputWords]
            : NhwcPacking.ToWords(NhwcPacking.ToNhwc<TFormat>(residual, c.Batch, c.OutChannels, c.OutHeight, c.OutWidth)));
        // Garbage in the output, so that a value the kernel fails to write shows.
        using var output = accelerator.Allocate1D(Enumerable.Repeat(0x7E00_7E00u, outputWords).ToArray());
        int tiles = Conv2dTensorCoreGeometry.TilesPerImage(p);
        using var moments = accelerator.Allocate1D<float>(c.Batch * tiles * outPadded * Conv2dTensorCoreGpu.MomentsPerChannel);
        using var stats = accelerator.Allocate1D<float>(c.Batch * c.Groups * 2);
        new Conv2dTensorCoreLauncher(accelerator, accelerator.DefaultStream).Run(bf16, p, input.View, weight.View, biasBuffer.View,
            residualBuffer.View, output.View, moments.View);
        var merge = new TileMomentsParams
        {
            Batch = c.Batch,
            Tiles = tiles,
            ChannelStride = outPadded,
            Groups = c.Groups,
            ChannelsPerGroup = c.OutChannels / c.Groups,
            Eps = GroupNormEps,
        };
        var launcher = new GroupNormLauncher(accelerator, accelerator.DefaultStream);
        launcher.MergeTileMoments(merge, moments.View, stats.View);
        // Exact tiling's form: per channel, (mean, M2) for the host to merge across tiles.
        using var channelMoments = accelerator.Allocate1D<float>(c.Batch * c.OutChannels * 2);
        launcher.MergeTileMoments(merge with { Groups = c.OutChannels, ChannelsPerGroup = 1, StatsAsMoments = 1 }, moments.View,
            channelMoments.View);
        accelerator.Synchronize();

        var words = output.GetAsArray1D();
        float[] actual;
        if (c.OutputF32)
        {
            actual = words[..^GuardWords].Select(BitConverter.UInt32BitsToSingle).ToArray();
            Assert.That(words[^GuardWords..], Is.All.EqualTo(0x7E00_7E00u), "nothing is written past the fp32 NCHW output");
        }
        else
        {
            var stored = NhwcPacking.FromWords(words);
            actual = NhwcPacking.FromNhwc<TFormat>(stored, c.Batch, c.OutChannels, c.OutHeight, c.OutWidth);
            for (int pixel = 0; pixel < c.Batch * c.OutHeight * c.OutWidth; pixel++)
            for (int channel = c.OutChannels; channel < outPadded; channel++)
                Assert.That(stored[pixel * outPadded + channel], Is.Zero, $"padded channel {channel} of pixel {pixel} is not zero");
        }
        NumericAssert.Close(actual, expected, new TensorShape(c.Batch, c.OutChannels, c.OutHeight, c.OutWidth),
            AbsoluteTolerance, relativeTolerance, $"tensor-core conv {c.Name} ({(bf16 ? "bf16" : "fp16")})");

        var (mean, m2) = Reference.GroupMoments(actual, c.Batch, c.OutChannels, c.OutHeight * c.OutWidth, c.Groups);
        int count = c.OutChannels / c.Groups * c.OutHeight * c.OutWidth;
        var expectedStats = new double[c.Batch * c.Groups * 2];
        for (int g = 0; g < mean.Length; g++)
        {
            expectedStats[2 * g] = mean[g];
            expectedStats[2 * g + 1] = 1 / Math.Sqrt(m2[g] / count + GroupNormEps);
        }
        NumericAssert.Close(stats.GetAsArray1D(), expectedStats, new TensorShape(c.Batch, c.Groups, 2),
            StatisticsTolerance, StatisticsTolerance, $"GroupNorm statistics from the epilogue's moments, {c.Name}");

        var (channelMean, channelM2) = Reference.GroupMoments(actual, c.Batch, c.OutChannels, c.OutHeight * c.OutWidth, c.OutChannels);
        var expectedMoments = new double[c.Batch * c.OutChannels * 2];
        for (int i = 0; i < channelMean.Length; i++) (expectedMoments[2 * i], expectedMoments[2 * i + 1]) = (channelMean[i], channelM2[i]);
        NumericAssert.Close(channelMoments.GetAsArray1D(), expectedMoments, new TensorShape(c.Batch, c.OutChannels, 2),
            StatisticsTolerance, StatisticsTolerance, $"per-channel (mean, M2) from the epilogue's moments, {c.Name}");
    }

    private const float GroupNormEps = 1e-6f;

    /// <summary>fp32 Welford and pairwise merges over at most a few thousand values of the stored output.</summary>
    private const double StatisticsTolerance = 1e-5;
}
