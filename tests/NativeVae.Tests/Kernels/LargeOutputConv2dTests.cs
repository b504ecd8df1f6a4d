using NativeVae.Kernels.Cpu;
using NativeVae.Kernels;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// Convolutions whose output is at least <see cref="CacheHints.StreamingOutputBytes"/> store it non-temporally and
/// prefetch their input rows (<see cref="CacheHints"/>). Two input channels keep the double reference cheap at that
/// size; odd widths put rows off the 64-byte alignment a streaming store needs, so both store kinds run.
/// </summary>
public sealed class LargeOutputConv2dTests
{
    private static readonly Conv2dCase[] Shapes =
    [
        new("large 3x3 509x515, 2->33, bias+residual", 1, 2, 509, 515, 33, 3, 1, 1, 1, 1, 1, false, true, true),
        new("large 3x3 s2 1024x1030, 2->33, bias", 1, 2, 1024, 1030, 33, 3, 2, 0, 1, 0, 1, false, true, false),
        new("large 3x3 upsample2x 255x257, 2->33, bias", 1, 2, 255, 257, 33, 3, 1, 1, 1, 1, 1, true, true, false),
    ];

    private static IEnumerable<TestCaseData> Cases()
    {
        foreach (var width in new[] { SimdWidth.V512, SimdWidth.V256 }.Where(w => w.Lanes() <= SimdWidths.Best.Lanes()))
        foreach (var shape in Shapes)
        foreach (bool winograd in new[] { false, true })
        {
            if (winograd && shape.Stride != 1) continue;
            yield return new TestCaseData(width.ToString(), shape, winograd).SetName($"{{m}}({width}, {shape.Name}, {(winograd ? "winograd" : "direct")})");
        }
    }

    [TestCaseSource(nameof(Cases))]
    public unsafe void MatchesTheReference(string widthName, Conv2dCase c, bool winograd)
    {
        var width = Enum.Parse<SimdWidth>(widthName); // by name: the kernels' types are internal to the test's signature
        Assert.That(CacheHints.StreamsOutput(c.OutShape.ElementCount), Is.True, $"{c.Name}: the output must be large enough to be streamed");
        float[] x = c.X, weight = c.Weight, bias = c.BiasValues!;
        float[]? residual = c.ResidualValues;
        var y = new float[c.OutShape.ElementCount];
        var p = new Conv2dParams
        {
            Batch = c.Batch, InChannels = c.InChannels, InHeight = c.Height, InWidth = c.Width,
            OutChannels = c.OutChannels, OutHeight = c.OutShape.H, OutWidth = c.OutShape.W,
            Kernel = c.Kernel, Stride = c.Stride, PadTop = c.PadTop, PadLeft = c.PadLeft,
            Upsample2x = c.Upsample2x ? 1 : 0, HasBias = 1, HasResidual = residual != null ? 1 : 0,
        };
        using var workers = new CpuWorkers(2);
        fixed (float* px = x, pw = weight, pb = bias, pr = residual, py = y)
        {
            if (winograd)
                Conv2dWinogradCpu.Run(workers, width, p, px, pw, pb, pr, py);
            else
            {
                using var packed = new Conv2dPackedWeights(pw, c.OutChannels, c.InChannels, c.Kernel);
                Conv2dCpu.Run(workers, width, p, px, packed, pb, pr, py);
            }
        }
        double error = NumericAssert.Close(y, c.Expected(), c.OutShape,
            Conv2dWinogradTests.AbsTolerance, Conv2dWinogradTests.RelTolerance, $"{c.Name} {width} {(winograd ? "winograd" : "direct")}");
        TestContext.Out.WriteLine($"{c.Name} {width}: max abs error {error:E2}");
    }
}
