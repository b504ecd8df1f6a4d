using NativeVae.Kernels.Gpu;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Kernels;

/// <summary>A batch of RGB images [N, H, W, 3] and its planar tensor shape [N, 3, H, W].</summary>
public sealed record ImageCase(int Batch, int Height, int Width)
{
    public override string ToString() => Batch == 1 ? $"{Height}x{Width}" : $"batch {Batch}, {Height}x{Width}";

    internal TensorShape Shape => TensorShape.Nchw(Batch, 3, Height, Width);

    /// <summary>Seeded bytes over the whole range, the first one 255.</summary>
    internal byte[] Pixels(ulong seed)
    {
        byte[] rgb = SeededWeights.Uniform(seed, $"image.{Batch}.{Height}.{Width}", Batch * Height * Width * 3)
            .Select(v => (byte)((v + 1) / 2 * 256)).ToArray();
        rgb[0] = byte.MaxValue;
        return rgb;
    }
}

/// <summary>Activations, add, scale/shift and the image conversions of every backend against double references.</summary>
public sealed class ElementwiseKernelTests
{
    private const ulong Seed = 17;
    private const double AbsTolerance = 1e-5;
    private const double RelTolerance = 1e-5;

    /// <summary>Scale/shift and image_to_tensor are one multiply-add: fp32 rounding is all the error there is.</summary>
    private const double AffineTolerance = 1e-6;

    /// <summary>
    /// Lengths: one element, odd, more than one auto-group, and more than two of the CPU backend's work items
    /// (2^16 values each) with a ragged last one.
    /// </summary>
    private static readonly int[] Lengths = [1, 7, 1001, 2 * (1 << 16) + 5];

    /// <summary>(batch, height, width): one pixel, odd, batch 2, and a row longer than every vector width.</summary>
    private static readonly ImageCase[] ImageShapes = [new(1, 1, 1), new(1, 7, 5), new(2, 3, 8), new(2, 7, 5), new(1, 3, 40)];

    private static IEnumerable<TestCaseData> LengthCases() => KernelBackends.Cases(KernelBackends.EveryBackend, Lengths);

    private static IEnumerable<TestCaseData> ImageCases() => KernelBackends.Cases(KernelBackends.EveryBackend, ImageShapes);

    /// <summary>Seeded values spread over [-40, 40], with the extremes that break naive formulas appended.</summary>
    private static float[] Inputs(int length, string stream)
    {
        var values = SeededWeights.Uniform(Seed, stream, length).Select(v => 40 * v).ToArray();
        float[] extremes = [0f, -0f, 1e-30f, -1e-30f, 88.8f, -88.8f, 100f, -100f, 1e30f, -1e30f, float.MaxValue, float.MinValue];
        for (int i = 0; i < Math.Min(length, extremes.Length); i++) values[i] = extremes[i];
        return values;
    }

    private static float[] Download(IBackend backend, Tensor t)
    {
        var values = new float[t.ElementCount];
        backend.Download(t, values);
        return values;
    }

    // UnaryOp is internal, so a case carries its name.
    private static IEnumerable<TestCaseData> UnaryCases() =>
        from backend in KernelBackends.EveryBackend
        from op in Enum.GetNames<UnaryOp>()
        from length in Lengths
        select new TestCaseData(backend, op, length);

    [TestCaseSource(nameof(UnaryCases))]
    public void UnaryMatchesReference(string backendName, string opName, int length)
    {
        var backend = KernelBackends.Get(backendName);
        var op = Enum.Parse<UnaryOp>(opName);
        float[] x = Inputs(length, $"unary.{op}.{length}");
        var shape = new TensorShape(length);
        using var tx = backend.Upload(x, shape);
        using var y = backend.Unary(op, tx);
        NumericAssert.Close(Download(backend, y), x.Select(v => Reference.Unary(op, v)).ToArray(), shape, AbsTolerance,
            RelTolerance, $"{op} {backendName} length {length}");
    }

    [TestCaseSource(nameof(LengthCases))]
    public void AddIsExactFp32Addition(string backendName, int length)
    {
        var backend = KernelBackends.Get(backendName);
        float[] a = Inputs(length, $"add.a.{length}");
        float[] b = SeededWeights.Uniform(Seed, $"add.b.{length}", length);
        var shape = new TensorShape(length);
        using var ta = backend.Upload(a, shape);
        using var tb = backend.Upload(b, shape);
        using var y = backend.Add(ta, tb);
        NumericAssert.Close(Download(backend, y), a.Zip(b, (u, v) => u + v).ToArray(), shape, 0, 0, $"add {backendName} length {length}");
    }

    [TestCaseSource(nameof(LengthCases))]
    public void ScaleShiftMatchesReference(string backendName, int length)
    {
        const float Scale = 0.18215f;
        const float Shift = -0.5f;
        var backend = KernelBackends.Get(backendName);
        float[] x = SeededWeights.Uniform(Seed, $"scale_shift.{length}", length).Select(v => 30 * v).ToArray();
        var shape = new TensorShape(length);
        using var tx = backend.Upload(x, shape);
        using var y = backend.ScaleShift(tx, Scale, Shift);
        NumericAssert.Close(Download(backend, y), x.Select(v => (double)v * Scale + Shift).ToArray(), shape,
            AffineTolerance, AffineTolerance, $"scale_shift {backendName} length {length}");
    }

    [TestCaseSource(nameof(LengthCases))]
    public void CountNonFiniteCountsNaNAndBothInfinities(string backendName, int length)
    {
        var backend = KernelBackends.Get(backendName);
        float[] x = Inputs(length, $"non_finite.{length}");   // float.MaxValue and MinValue among them: finite
        var shape = new TensorShape(length);
        using (var clean = backend.Upload(x, shape))
            Assert.That(backend.CountNonFinite(clean), Is.Zero, $"{backendName}: finite extremes count as finite");
        // The first and last element, and one every 997 (crossing the CPU backend's work items).
        for (int i = 0; i < length; i += 997) x[i] = (i / 997 % 3) switch { 0 => float.NaN, 1 => float.PositiveInfinity, _ => float.NegativeInfinity };
        x[^1] = float.NaN;
        long expected = x.LongCount(v => double.IsNaN(v) || double.IsInfinity(v));
        using var t = backend.Upload(x, shape);
        Assert.That(backend.CountNonFinite(t), Is.EqualTo(expected), $"{backendName} length {length}");
    }

    [TestCaseSource(nameof(ImageCases))]
    public void ImageToTensorIsPlanarAndScaled(string backendName, ImageCase image)
    {
        const float Scale = 2f;
        const float Shift = -1f;
        var backend = KernelBackends.Get(backendName);
        byte[] rgb = image.Pixels(Seed);
        using var y = backend.ImageToTensor(rgb, image.Batch, image.Height, image.Width, Scale, Shift);
        Assert.That(y.Shape, Is.EqualTo(image.Shape));
        NumericAssert.Close(Download(backend, y), Reference.ImageToTensor(rgb, image.Batch, image.Height, image.Width, Scale, Shift),
            image.Shape, AffineTolerance, AffineTolerance, $"image_to_tensor {backendName}");
    }

    [TestCaseSource(nameof(ImageCases))]
    public void TensorToImageRoundsAndClamps(string backendName, ImageCase image)
    {
        const float Scale = 0.5f;
        const float Shift = 0.5f;
        var backend = KernelBackends.Get(backendName);
        var (batch, height, width) = (image.Batch, image.Height, image.Width);
        int length = (int)image.Shape.ElementCount;
        // [-1.2, 1.2]: some values clamp at each end.
        float[] x = SeededWeights.Uniform(Seed, $"to_image.{batch}.{height}.{width}", length).Select(v => 1.2f * v).ToArray();
        x[0] = float.NaN;
        using var tx = backend.Upload(x, image.Shape);
        var actual = new byte[length];
        backend.TensorToImage(tx, actual, Scale, Shift);

        int plane = height * width;
        for (int n = 0; n < batch; n++)
        for (int p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++)
        {
            double value = x[(n * 3 + c) * plane + p] * (double)Scale + Shift;
            double expected = Reference.Pixel(value);
            int at = (n * plane + p) * 3 + c;
            // fp32 versus double may land on either side of a .5 boundary: allow 1 there, exact elsewhere.
            double distanceToTie = Math.Abs(Math.Clamp(value, 0, 1) * 255 % 1 - 0.5);
            double allowed = distanceToTie < 1e-4 ? 1 : 0;
            Assert.That(Math.Abs(actual[at] - expected), Is.LessThanOrEqualTo(allowed),
                $"tensor_to_image {backendName} at [{n}, {p / width}, {p % width}, {c}]: value {value}, expected {expected}, actual {actual[at]}");
        }
    }

    [TestCaseSource(nameof(ImageCases))]
    public void ImageRoundTripIsExact(string backendName, ImageCase image)
    {
        var backend = KernelBackends.Get(backendName);
        byte[] rgb = image.Pixels(Seed + 1);
        using var t = backend.ImageToTensor(rgb, image.Batch, image.Height, image.Width, 2f, -1f);
        var back = new byte[rgb.Length];
        backend.TensorToImage(t, back, 0.5f, 0.5f);
        Assert.That(back, Is.EqualTo(rgb), $"{backendName}: tensor_to_image(image_to_tensor(rgb)) must give rgb back");
    }

    [TestCase(0.5f, 0f)]
    [TestCase(1.5f, 2f)]
    [TestCase(2.5f, 2f)]
    [TestCase(254.5f, 254f)]
    [TestCase(253.5f, 254f)]
    [TestCase(127.49999f, 127f)]
    [TestCase(127.50001f, 128f)]
    [TestCase(0f, 0f)]
    [TestCase(255f, 255f)]
    public void RoundsHalfToEvenLikeTorch(float value, float expected) =>
        Assert.That(DeviceMath.RoundHalfToEven(value), Is.EqualTo(expected));
}
