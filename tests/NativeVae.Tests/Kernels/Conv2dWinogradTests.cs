using NativeVae.Core;
using NativeVae.Backends.Cpu;
using NativeVae.Kernels.Cpu;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// The CPU backend's Winograd F(4x4, 3x3) path (3x3 stride-1 same-size convs with >= 64 channels) at every
/// vector width, against the double reference, and against the direct path on the same backend.
/// </summary>
public sealed class Conv2dWinogradTests
{
    // F(4x4, 3x3) computes each output as a sum of 36 transformed products whose transforms have constants up
    // to 8 (A) and 5 (B) and 1/24 (G): the fp32 rounding error grows ~10x over the direct sum (Lavin & Gray 2015,
    // Barabasz et al. 2020). At these O(1) outputs we measure up to 1e-5 abs (direct: ~1e-6); 3e-5 leaves headroom for
    // other inputs while still catching any wrong transform coefficient or index (those give O(0.1) errors).
    internal const double AbsTolerance = 3e-5;
    internal const double RelTolerance = 3e-5;

    // Tiles straddle the image edge (sizes not multiples of 4), the tile-column groups (> 64 tiles), the
    // vector widths, the output-channel blocks (Cout not a multiple of 4); upsample expands in the packing.
    private static readonly Conv2dCase[] Shapes =
    [
        new("winograd 5x4, 96->96, residual", 1, 96, 5, 4, 96, 3, 1, 1, 1, 1, 1, false, false, true),
        new("winograd batch 2, 9x13, 64->70, bias+residual", 2, 64, 9, 13, 70, 3, 1, 1, 1, 1, 1, false, true, true),
        new("winograd 1x1 image, 64->64, bias", 1, 64, 1, 1, 64, 3, 1, 1, 1, 1, 1, false, true, false),
        new("winograd 17x6, 128->67, bias", 1, 128, 17, 6, 67, 3, 1, 1, 1, 1, 1, false, true, false),
        new("winograd 6x300 (two tile-column groups), 64->64, bias+residual", 1, 64, 6, 300, 64, 3, 1, 1, 1, 1, 1, false, true, true),
        new("winograd upsample2x, 5x7, 65->64, bias+residual", 1, 65, 5, 7, 64, 3, 1, 1, 1, 1, 1, true, true, true),
        new("winograd upsample2x, batch 2, 1x1 image, 64->64", 2, 64, 1, 1, 64, 3, 1, 1, 1, 1, 1, true, false, false),
        // Weight-bound channel counts take items of up to 256 tiles: more than one micro-kernel column run per item.
        new("winograd 36x4, 384->384 (large items), bias+residual", 1, 384, 36, 4, 384, 3, 1, 1, 1, 1, 1, false, true, true),
        // 512 x 512 transformed weights (36 MiB) are stored non-temporally (CacheHints.StreamsOutput).
        new("winograd 8x5, 512->512 (streamed weight transform), bias", 1, 512, 8, 5, 512, 3, 1, 1, 1, 1, 1, false, true, false),
        // Exact tiling's windows: padded only on the sides at the image's edge (interior tiles: none).
        new("winograd valid (pad 0) 11x10, 64->66, bias+residual", 1, 64, 11, 10, 66, 3, 1, 0, 0, 0, 0, false, true, true),
        new("winograd top-left tile (pad 1, 0, 1, 0) 9x70, 64->64, bias", 1, 64, 9, 70, 64, 3, 1, 1, 0, 1, 0, false, true, false),
        new("winograd bottom-right tile (pad 0, 1, 0, 1), batch 2, 7x6, 65->64, residual", 2, 65, 7, 6, 64, 3, 1, 0, 1, 0, 1, false, false, true),
    ];

    private static IEnumerable<TestCaseData> OnEveryWidth() => KernelBackends.Cases(KernelBackends.Cpu, Shapes);

    [TestCaseSource(nameof(OnEveryWidth))]
    public void MatchesReference(string backendName, Conv2dCase c)
    {
        var width = Enum.Parse<SimdWidth>(backendName["cpu-".Length..]);
        using var backend = new CpuBackend(width, threads: 2);
        float[] actual = c.Run(backend)[0];
        double error = NumericAssert.Close(actual, c.Expected(), c.OutShape, AbsTolerance, RelTolerance, $"winograd conv2d {backendName} {c.Name}");
        TestContext.Out.WriteLine($"{backendName} {c.Name}: max abs error {error:E2}");
    }

    [Test]
    public void The512ChannelCaseCoversTheStreamedWeightTransform()
    {
        Assert.That(CacheHints.StreamsOutput(Conv2dWinogradWeights.FloatsFor(512, 512)), Is.True,
            "512x512 transformed weights pass the streaming threshold, so Shapes' 512-channel case checks the non-temporal stores");
    }

    [Test]
    public void WeightsAreTransformedPerCallIntoOneReusedScratch()
    {
        var c = Shapes[1];
        using var backend = new CpuBackend(threads: 2);
        var outputs = c.Run(backend, calls: 2);
        Assert.That(outputs[1], Is.EqualTo(outputs[0]), "second call, weights transformed again");

        using var x = backend.Upload(c.X, c.InShape);
        using var w = backend.Upload(c.Weight, c.WeightShape);
        using (backend.Conv2d(x, w, null, c.Spec)) { }
        long before = backend.Memory.LiveBytes;
        using var other = backend.Upload(c.Weight, c.WeightShape);
        using (backend.Conv2d(x, other, null, c.Spec)) { }
        Assert.That(backend.Memory.LiveBytes, Is.EqualTo(before + c.WeightShape.ElementCount * sizeof(float)),
            "a second Winograd weight costs its own bytes only: no transformed copy is kept per weight");
        var readBack = new float[w.ElementCount];
        backend.Download(w, readBack);
        Assert.That(readBack, Is.EqualTo(c.Weight), "the row-major weight is kept exactly");
    }

    [Test]
    public void AWeightPreparedForTheDirectPathIsHeldOnceAndStillServesWinograd()
    {
        // A 3x3 weight prepared for stride 2 (the direct path) is kept packed only; at stride 1 Winograd reads it
        // unpacked into a reused buffer, and the weight stays as it was prepared.
        var c = Shapes[1];
        using var backend = new CpuBackend(threads: 2);
        using var x = backend.Upload(c.X, c.InShape);
        float[] Output(Tensor weight, Conv2dSpec spec)
        {
            using var y = backend.Conv2d(x, weight, null, spec);
            var values = new float[y.ElementCount];
            backend.Download(y, values);
            return values;
        }
        var strided = NativeVae.Core.Conv2dSpec.Stride2Pad1;
        using var rowMajor = backend.Upload(c.Weight, c.WeightShape);
        using var w = (CpuTensor)backend.PrepareConvWeight(backend.Upload(c.Weight, c.WeightShape), strided);
        Assert.That(w.PackedConvWeights, Is.Not.Null, "prepared for the direct path: packed");
        Assert.That(Output(w, strided), Is.EqualTo(Output(rowMajor, strided)), "the direct path on the packing");
        Assert.That(Output(w, c.Spec), Is.EqualTo(Output(rowMajor, c.Spec)), "Winograd on the unpacked packing");
        Assert.That(w.PackedConvWeights, Is.Not.Null, "the weight keeps its packing");
        using var winograd = backend.PrepareConvWeight(rowMajor, c.Spec);
        Assert.That(winograd, Is.SameAs(rowMajor), "a Winograd weight stays row-major");
    }

    [Test]
    public void SmallChannelsAndOtherGeometriesKeepTheDirectPath()
    {
        var p = new NativeVae.Kernels.Conv2dParams { Kernel = 3, Stride = 1, PadTop = 1, PadLeft = 1, InHeight = 8, InWidth = 8, OutHeight = 8, OutWidth = 8 };
        Assert.That(Conv2dWinogradCpu.Supports(p), Is.True, "3x3 s1 p1");
        Assert.That(Conv2dWinogradCpu.Supports(p with { Stride = 2, OutHeight = 4, OutWidth = 4 }), Is.False, "stride 2");
        Assert.That(Conv2dWinogradCpu.Supports(p with { PadTop = 0, OutHeight = 7 }), Is.True, "pad top 0, bottom 1 (a tile at the bottom edge)");
        Assert.That(Conv2dWinogradCpu.Supports(p with { PadTop = 0, PadLeft = 0, OutHeight = 6, OutWidth = 6 }), Is.True, "valid (an interior tile)");
        Assert.That(Conv2dWinogradCpu.Supports(p with { PadTop = 2, OutHeight = 10 }), Is.False, "pad 2");
        Assert.That(Conv2dWinogradCpu.Supports(p with { OutHeight = 11 }), Is.False, "bottom pad 2");
        Assert.That(Conv2dWinogradCpu.Supports(p with { Upsample2x = 1, OutHeight = 16, OutWidth = 16 }), Is.True, "upsample");
        Assert.That(Conv2dWinogradCpu.Supports(p with { Upsample2x = 1, PadTop = 0, PadLeft = 0, OutHeight = 14, OutWidth = 14 }), Is.False,
            "upsample without padding: the upsampled packing assumes pad 1");
        Assert.That(Conv2dWinogradCpu.Supports(p with { Kernel = 1 }), Is.False, "1x1");
    }
}
