using NativeVae.Backends;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels.Gpu;
using NativeVae.Tensors;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Kernels;

/// <summary>Activations, add, scale/shift and the image conversions against double references.</summary>
public sealed class ElementwiseKernelTests
{
    private const ulong Seed = 17;
    private const double AbsTolerance = 1e-5;
    private const double RelTolerance = 1e-5;

    /// <summary>Lengths: one element, odd, and more than one auto-group.</summary>
    private static readonly int[] Lengths = [1, 7, 1001];

    private static IlgpuBackend Backend => KernelBackends.Plain;

    /// <summary>Seeded values spread over [-40, 40], with the extremes that break naive formulas appended.</summary>
    private static float[] Inputs(int length, string stream)
    {
        var values = SeededWeights.Uniform(Seed, stream, length).Select(v => 40 * v).ToArray();
        float[] extremes = [0f, -0f, 1e-30f, -1e-30f, 88.8f, -88.8f, 100f, -100f, 1e30f, -1e30f, float.MaxValue, float.MinValue];
        for (int i = 0; i < Math.Min(length, extremes.Length); i++) values[i] = extremes[i];
        return values;
    }

    private static IEnumerable<TestCaseData> UnaryCases() =>
        from op in Enum.GetNames<UnaryOp>()
        from length in Lengths
        select new TestCaseData(op, length);

    [TestCaseSource(nameof(UnaryCases))]
    public void UnaryMatchesReference(string opName, int length)
    {
        // UnaryOp is internal, so the case carries its name.
        var op = Enum.Parse<UnaryOp>(opName);
        float[] x = Inputs(length, $"unary.{op}.{length}");
        Func<double, double> reference = op switch
        {
            UnaryOp.Silu => Reference.Silu,
            UnaryOp.Relu => Reference.Relu,
            _ => Reference.TanhClamp3,
        };
        var shape = new TensorShape(length);
        using var tx = Backend.Upload(x, shape);
        using var y = Backend.Unary(op, tx);
        var actual = new float[length];
        Backend.Download(y, actual);
        NumericAssert.Close(actual, x.Select(v => reference(v)).ToArray(), shape, AbsTolerance, RelTolerance, $"{op} length {length}");
    }

    [Test]
    public void AddMatchesReference([ValueSource(nameof(Lengths))] int length)
    {
        float[] a = Inputs(length, $"add.a.{length}");
        float[] b = SeededWeights.Uniform(Seed, $"add.b.{length}", length);
        var shape = new TensorShape(length);
        using var ta = Backend.Upload(a, shape);
        using var tb = Backend.Upload(b, shape);
        using var y = Backend.Add(ta, tb);
        var actual = new float[length];
        Backend.Download(y, actual);
        NumericAssert.Close(actual, a.Select((v, i) => (double)v + b[i]).ToArray(), shape, AbsTolerance, RelTolerance, $"add length {length}");
    }

    [Test]
    public void ScaleShiftMatchesReference([ValueSource(nameof(Lengths))] int length)
    {
        const float Scale = 0.18215f;
        const float Shift = -0.5f;
        float[] x = SeededWeights.Uniform(Seed, $"scale_shift.{length}", length).Select(v => 30 * v).ToArray();
        var shape = new TensorShape(length);
        using var tx = Backend.Upload(x, shape);
        using var y = Backend.ScaleShift(tx, Scale, Shift);
        var actual = new float[length];
        Backend.Download(y, actual);
        NumericAssert.Close(actual, x.Select(v => (double)v * Scale + Shift).ToArray(), shape, AbsTolerance, RelTolerance,
            $"scale_shift length {length}");
    }

    private static IEnumerable<TestCaseData> ImageShapes()
    {
        yield return new TestCaseData(1, 1, 1).SetArgDisplayNames("1x1");
        yield return new TestCaseData(1, 7, 5).SetArgDisplayNames("7x5");
        yield return new TestCaseData(2, 3, 8).SetArgDisplayNames("batch 2, 3x8");
    }

    [TestCaseSource(nameof(ImageShapes))]
    public void ImageToTensorIsPlanarAndScaled(int batch, int height, int width)
    {
        const float Scale = 2f;
        const float Shift = -1f;
        int length = batch * height * width * 3;
        byte[] rgb = SeededWeights.Uniform(Seed, $"image.{batch}.{height}.{width}", length)
            .Select(v => (byte)((v + 1) / 2 * 256)).ToArray();
        rgb[0] = 255;
        using var y = Backend.ImageToTensor(rgb, batch, height, width, Scale, Shift);
        var shape = TensorShape.Nchw(batch, 3, height, width);
        Assert.That(y.Shape, Is.EqualTo(shape));
        var expected = new double[length];
        for (int n = 0; n < batch; n++)
        for (int c = 0; c < 3; c++)
        for (int p = 0; p < height * width; p++)
            expected[(n * 3 + c) * height * width + p] = rgb[(n * height * width + p) * 3 + c] / 255.0 * Scale + Shift;
        var actual = new float[length];
        Backend.Download(y, actual);
        NumericAssert.Close(actual, expected, shape, AbsTolerance, RelTolerance, "image_to_tensor");
    }

    [TestCaseSource(nameof(ImageShapes))]
    public void TensorToImageRoundsAndClamps(int batch, int height, int width)
    {
        const float Scale = 0.5f;
        const float Shift = 0.5f;
        var shape = TensorShape.Nchw(batch, 3, height, width);
        int length = (int)shape.ElementCount;
        // [-1.2, 1.2]: some values clamp at each end.
        float[] x = SeededWeights.Uniform(Seed, $"to_image.{batch}.{height}.{width}", length).Select(v => 1.2f * v).ToArray();
        x[0] = float.NaN;
        using var tx = Backend.Upload(x, shape);
        var actual = new byte[length];
        Backend.TensorToImage(tx, actual, Scale, Shift);

        int plane = height * width;
        for (int n = 0; n < batch; n++)
        for (int p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++)
        {
            double value = x[(n * 3 + c) * plane + p] * (double)Scale + Shift;
            double expected = double.IsNaN(value) ? 0 : Math.Round(Math.Clamp(value, 0, 1) * 255, MidpointRounding.ToEven);
            int at = (n * plane + p) * 3 + c;
            // fp32 versus double may land on either side of a .5 boundary: allow 1 there, exact elsewhere.
            double distanceToTie = Math.Abs(Math.Clamp(value, 0, 1) * 255 % 1 - 0.5);
            double allowed = distanceToTie < 1e-4 ? 1 : 0;
            Assert.That(Math.Abs(actual[at] - expected), Is.LessThanOrEqualTo(allowed),
                $"tensor_to_image at [{n}, {p / width}, {p % width}, {c}]: value {value}, expected {expected}, actual {actual[at]}");
        }
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
