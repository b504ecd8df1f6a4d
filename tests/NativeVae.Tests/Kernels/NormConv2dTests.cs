using NativeVae.Backends.Cpu;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// <see cref="IBackend.NormConv2d"/>: GroupNorm (+ SiLU) fused into the convolution that reads it. On every backend
/// and kernel version it must equal GroupNorm then Conv2d on that backend (the CPU backend folds the statistics into
/// a per-channel affine applied while packing; the others run the two ops), and both must match the double
/// reference. On the CPU backend the normalised tensor must never be allocated.
/// </summary>
public sealed class NormConv2dTests
{
    // Fused and unfused apply the same fp32 affine and SiLU (a packed row's last few values may take the scalar exp,
    // an ulp away), so they differ by the convolution's own rounding: ~3e-7 direct, up to ~1e-5 Winograd, whose
    // rounding pattern changes with any input ulp. Both are held to the Winograd tolerance against the reference.
    public sealed record Case(string Name, int Groups, bool Silu, Conv2dCase Conv)
    {
        public override string ToString() => Name;

        internal float[] Gamma => SeededWeights.Uniform(11, Name + ".gamma", Conv.InChannels).Select(g => 1 + 0.5f * g).ToArray();

        internal float[] Beta => SeededWeights.Uniform(11, Name + ".beta", Conv.InChannels);

        // Inputs off-centre and scaled, as activations are, so that the statistics matter.
        internal float[] X => Conv.X.Select(v => 3 * v + 1.5f).ToArray();
    }

    private static readonly Case[] Cases =
    [
        // The direct path: few channels, odd sizes, batch 2 (per-image statistics), residual.
        new("gn4+silu 3x3 s1, batch 2, 7x5, 8->5, bias+residual", 4, true,
            new("gn direct", 2, 8, 7, 5, 5, 3, 1, 1, 1, 1, 1, false, true, true)),
        // Winograd (>= 64 channels, 3x3 s1 same), tiles straddling the edge, Cout not a multiple of 4.
        new("gn32+silu 3x3 s1 Winograd, 9x13, 64->70, bias", 32, true,
            new("gn winograd", 1, 64, 9, 13, 70, 3, 1, 1, 1, 1, 1, false, true, false)),
        new("gn8 (no silu) 3x3 s1 Winograd, batch 2, 6x7, 64->64, residual", 8, false,
            new("gn winograd 2", 2, 64, 6, 7, 64, 3, 1, 1, 1, 1, 1, false, false, true)),
        // Stride 2 with diffusers' right/bottom pad: the phase-split packing.
        new("gn2+silu 3x3 s2 (Downsample2D), 8x7, 6->9", 2, true,
            new("gn stride 2", 1, 6, 8, 7, 9, 3, 2, 0, 1, 0, 1, false, true, false)),
        // 1x1 whose pixels fill whole vectors: the CPU's flat path reads the input in place, so fusing must pack.
        new("gn4+silu 1x1, 16x16, 8->6, bias+residual", 4, true,
            new("gn pointwise", 1, 8, 16, 16, 6, 1, 1, 0, 0, 0, 0, false, true, true)),
        // Upsample: the norm applies to the stored input, before the 2x expansion.
        new("gn4+silu upsample2x + 3x3, 3x4, 8->5", 4, true,
            new("gn upsample", 1, 8, 3, 4, 5, 3, 1, 1, 1, 1, 1, true, false, false)),
    ];

    private static IEnumerable<TestCaseData> OnEveryBackend() => KernelBackends.Cases(KernelBackends.EveryVersion, Cases);

    [TestCaseSource(nameof(OnEveryBackend))]
    public void EqualsGroupNormThenConv(string backendName, Case c)
    {
        var backend = KernelBackends.Get(backendName);
        var conv = c.Conv;
        using var x = backend.Upload(c.X, conv.InShape);
        using var gamma = backend.Upload(c.Gamma, new TensorShape(conv.InChannels));
        using var beta = backend.Upload(c.Beta, new TensorShape(conv.InChannels));
        using var weight = backend.Upload(conv.Weight, conv.WeightShape);
        using var bias = conv.BiasValues is { } b ? backend.Upload(b, new TensorShape(conv.OutChannels)) : null;
        using var residual = conv.ResidualValues is { } r ? backend.Upload(r, conv.OutShape) : null;
        var norm = new GroupNormSpec(gamma, beta, c.Groups, GroupNormEps, c.Silu);

        float[] fused = Download(backend, backend.NormConv2d(x, norm, weight, bias, conv.Spec, residual));
        float[] unfused;
        using (var normed = backend.GroupNorm(x, gamma, beta, c.Groups, GroupNormEps, c.Silu))
            unfused = Download(backend, backend.Conv2d(normed, weight, bias, conv.Spec, residual));

        // The double reference: GroupNorm (+ SiLU) in double, then the convolution of those values.
        var (normedReference, _, _) = Reference.GroupNorm(c.X, conv.Batch, conv.InChannels, conv.Height * conv.Width, c.Groups,
            GroupNormEps, c.Gamma, c.Beta, c.Silu);
        var expected = Reference.Conv2d(Reference.ConvGeometry.Of(conv.Batch, conv.InChannels, conv.Height, conv.Width,
            conv.OutChannels, conv.Kernel, conv.Spec), normedReference.Select(v => (float)v).ToArray(), conv.Weight, conv.BiasValues, conv.ResidualValues);
        NumericAssert.Close(fused, expected, conv.OutShape, Conv2dWinogradTests.AbsTolerance, Conv2dWinogradTests.RelTolerance,
            $"norm_conv2d {backendName} {c.Name} vs reference");
        NumericAssert.Close(fused, unfused, conv.OutShape, Conv2dWinogradTests.AbsTolerance, Conv2dWinogradTests.RelTolerance,
            $"norm_conv2d {backendName} {c.Name} vs group_norm then conv2d");
    }

    [Test]
    public void TheCpuBackendNeverStoresTheNormalisedInput()
    {
        var c = Cases[1];
        var conv = c.Conv;
        using var backend = new CpuBackend(threads: 2);
        using var x = backend.Upload(c.X, conv.InShape);
        using var gamma = backend.Upload(c.Gamma, new TensorShape(conv.InChannels));
        using var beta = backend.Upload(c.Beta, new TensorShape(conv.InChannels));
        using var weight = backend.Upload(conv.Weight, conv.WeightShape);
        var norm = new GroupNormSpec(gamma, beta, c.Groups, GroupNormEps, c.Silu);
        using (backend.NormConv2d(x, norm, weight, null, conv.Spec)) { } // scratch grows on the first call

        backend.ResetPeakMemory();
        long before = backend.Memory.LiveBytes;
        using var y = backend.NormConv2d(x, norm, weight, null, conv.Spec);
        long extra = backend.Memory.PeakBytes - before - y.ByteLength;
        Assert.That(extra, Is.LessThan(x.ByteLength / 4),
            $"peak above the inputs and the output: {extra} bytes; a stored normalised input would be {x.ByteLength}");
    }

    [TestCaseSource(typeof(KernelBackends), nameof(KernelBackends.Cpu))]
    public void StatisticsGatheredByTheProducingWinogradConvolutionMatchAPass(string backendName)
    {
        // y = conv(x) + bias + residual on the Winograd path records y's per-channel statistics; a GroupNorm of y
        // folded from them must equal one that reads y (batch 2: statistics per image; offset bias: far from zero).
        var backend = (CpuBackend)KernelBackends.Get(backendName);
        var producer = new Conv2dCase("producer", 2, 64, 9, 13, 64, 3, 1, 1, 1, 1, 1, false, true, true);
        using var x = backend.Upload(producer.X, producer.InShape);
        using var weight = backend.Upload(producer.Weight, producer.WeightShape);
        using var bias = backend.Upload(producer.BiasValues!.Select(b => b + 2f).ToArray(), new TensorShape(64));
        using var residual = backend.Upload(producer.ResidualValues!, producer.OutShape);
        using var y = (CpuTensor)backend.Conv2d(x, weight, bias, producer.Spec, residual);
        Assert.That(y.Moments, Is.Not.Null, "the Winograd path gathered the statistics");

        var c = Cases[1];
        using var gamma = backend.Upload(c.Gamma, new TensorShape(64));
        using var beta = backend.Upload(c.Beta, new TensorShape(64));
        using var w2 = backend.Upload(c.Conv.Weight[..(70 * 64 * 9)], c.Conv.WeightShape);
        var norm = new GroupNormSpec(gamma, beta, 32, GroupNormEps, Silu: true);
        float[] fused = Download(backend, backend.NormConv2d(y, norm, w2, null, Conv2dSpec.Same));
        float[] unfused;
        using (var normed = backend.GroupNorm(y, gamma, beta, 32, GroupNormEps, fuseSilu: true))
            unfused = Download(backend, backend.Conv2d(normed, w2, null, Conv2dSpec.Same));
        NumericAssert.Close(fused, unfused, TensorShape.Nchw(2, 70, 9, 13), Conv2dWinogradTests.AbsTolerance,
            Conv2dWinogradTests.RelTolerance, $"norm_conv2d {backendName} from gathered statistics vs group_norm then conv2d");
    }

    private const float GroupNormEps = 1e-6f;

    private static float[] Download(IBackend backend, Tensor y)
    {
        using (y)
        {
            var values = new float[y.ElementCount];
            backend.Download(y, values);
            return values;
        }
    }
}
