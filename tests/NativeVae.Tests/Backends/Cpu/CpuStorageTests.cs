using NativeVae.Backends.Cpu;
using NativeVae.Core;
using NativeVae.Kernels.Cpu;

namespace NativeVae.Tests.Backends.Cpu;

/// <summary>
/// The CPU backend with 16-bit storage. Kernels compute in fp32 and only widen what they read and narrow what they
/// write, so on inputs already on the 16-bit grid every op must return exactly the fp32 backend's result rounded to
/// 16 bits: the tests compare bit for bit. Shapes are odd (tails of vectors, tiles and channel blocks), and cover
/// both convolution paths (direct with stride 2, 1x1 and upsampling; Winograd with upsampling), residuals, folded
/// GroupNorm from a pass and from a Winograd epilogue's moments, attention, and the image conversions.
/// </summary>
[TestFixture]
internal sealed unsafe class CpuStorageTests
{
    private const int Threads = 2;

    public static readonly DType[] SixteenBit = [DType.BF16, DType.F16];

    private static float[] OnGrid(DType dtype, float[] values)
    {
        var type = CpuBackend.StorageOf(dtype);
        var narrow = new ushort[values.Length];
        var back = new float[values.Length];
        fixed (float* v = values)
        fixed (ushort* n = narrow)
        fixed (float* b = back)
        {
            StorageConversion.Narrow(type, v, n, 0, values.Length);
            StorageConversion.Widen(type, n, 0, b, values.Length);
        }
        return back;
    }

    private static float[] Random(int seed, long count, float scale)
    {
        var rng = new Random(seed);
        var values = new float[count];
        for (long i = 0; i < count; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return values;
    }

    /// <summary>Runs <paramref name="op"/> on an fp32 and a 16-bit backend with the same on-grid inputs.</summary>
    private static void AssertRounded(DType dtype, string name, (TensorShape Shape, float Scale)[] inputs,
        Func<IBackend, Tensor[], Tensor> op)
    {
        var values = inputs.Select((input, i) => OnGrid(dtype, Random(100 + i, input.Shape.ElementCount, input.Scale))).ToArray();
        float[] Run(IBackend backend, DType storage)
        {
            var tensors = inputs.Select((input, i) =>
                backend.Upload(values[i], input.Shape, input.Shape.Rank >= 2 ? storage : DType.F32)).ToArray();
            try
            {
                using var y = op(backend, tensors);
                Assert.That(y.DType, Is.EqualTo(storage), $"{name}: the output is stored in the backend's dtype");
                Assert.That(y.Shape.C, Is.Not.EqualTo(3), $"{name}: a case of 16-bit output (3 channels is an image, kept F32)");
                var result = new float[y.ElementCount];
                backend.Download(y, result);
                return result;
            }
            finally
            {
                foreach (var t in tensors) t.Dispose();
            }
        }
        using var full = new CpuBackend(threads: Threads);
        using var half = new CpuBackend(threads: Threads, storage: dtype);
        var expected = OnGrid(dtype, Run(full, DType.F32));
        var actual = Run(half, dtype);
        Assert.That(expected.Any(v => v != 0), $"{name}: the case computes something");
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToUInt32Bits(actual[i]) != BitConverter.SingleToUInt32Bits(expected[i]))
                Assert.Fail($"{name} {dtype}: element {i} is {actual[i]:R}, the fp32 result rounded is {expected[i]:R}");
    }

    private static (TensorShape, float) T(float scale, params int[] dims) => (new TensorShape(dims), scale);

    // (name, n, cin, h, w, cout, k, spec): direct convs take the packed path, 3x3 stride-1 with >= 64 channels Winograd.
    private static readonly object[][] Convs =
    [
        ["direct 3x3 7x9 5->6", 1, 5, 7, 9, 6, 3, "Same"],
        ["direct 3x3 stride 2, 9x11 6->5", 2, 6, 9, 11, 5, 3, "Stride2Pad1"],
        ["direct asymmetric downsample 8x13 3->7", 1, 3, 8, 13, 7, 3, "DownsampleAsymmetric"],
        ["direct 1x1 5x37 9->5", 1, 9, 5, 37, 5, 1, "Pointwise"],
        ["direct upsample 5x7 4->5", 1, 4, 5, 7, 5, 3, "UpsampleSame"],
        ["winograd 9x13 64->67", 1, 64, 9, 13, 67, 3, "Same"],
        ["winograd upsample 5x6 64->64", 2, 64, 5, 6, 64, 3, "UpsampleSame"],
    ];

    private static Conv2dSpec Spec(string name) => name switch
    {
        "Same" => Conv2dSpec.Same,
        "Stride2Pad1" => Conv2dSpec.Stride2Pad1,
        "DownsampleAsymmetric" => Conv2dSpec.DownsampleAsymmetric,
        "Pointwise" => Conv2dSpec.Pointwise,
        "UpsampleSame" => Conv2dSpec.UpsampleSame,
        _ => throw new ArgumentException(name),
    };

    private static IEnumerable<TestCaseData> ConvCases() =>
        from dtype in SixteenBit from c in Convs select new TestCaseData([dtype, .. c]).SetArgDisplayNames($"{dtype} {c[0]}");

    [TestCaseSource(nameof(ConvCases))]
    public void Conv2dWithBiasAndResidualIsTheFp32ResultRounded(DType dtype, string name, int n, int cin, int h, int w, int cout, int k, string specName)
    {
        var spec = Spec(specName);
        int ho = spec.OutputHeight(h, k), wo = spec.OutputWidth(w, k);
        AssertRounded(dtype, name,
            [T(1, n, cin, h, w), T((float)(1 / Math.Sqrt(cin * k * k)), cout, cin, k, k), T(0.5f, cout), T(1, n, cout, ho, wo)],
            (b, t) => b.Conv2d(t[0], t[1], t[2], spec, t[3]));
    }

    [TestCaseSource(nameof(ConvCases))]
    public void NormConv2dIsTheFp32ResultRounded(DType dtype, string name, int n, int cin, int h, int w, int cout, int k, string specName)
    {
        var spec = Spec(specName);
        int groups = cin % 32 == 0 ? 32 : 1;
        AssertRounded(dtype, name,
            [T(2, n, cin, h, w), T(1, cin), T(1, cin), T((float)(1 / Math.Sqrt(cin * k * k)), cout, cin, k, k), T(0.5f, cout)],
            (b, t) => b.NormConv2d(t[0], new GroupNormSpec(t[1], t[2], groups, 1e-6f, Silu: true), t[3], t[4], spec));
    }

    [TestCase(DType.BF16, 1.0 / 64)]
    [TestCase(DType.F16, 1.0 / 512)]
    public void NormConv2dFoldsTheMomentsOfA16BitWinogradOutput(DType dtype, double relativeTolerance)
    {
        // The first convolution's epilogue gathers its outputs' moments (of the fp32 values, before rounding); the
        // second folds them instead of a pass. The intermediate is rounded, so this chain is close, not bit-equal:
        // within a few 16-bit ulps of the output's scale.
        var values = new[] { (64 * 6 * 9, 1f), (64 * 64 * 9, 0.05f), (64, 0.5f), (64, 1f), (64, 1f), (64 * 64 * 9, 0.05f) }
            .Select((v, i) => OnGrid(dtype, Random(200 + i, v.Item1, v.Item2))).ToArray();
        float[] Run(CpuBackend b, DType storage)
        {
            using var x = b.Upload(values[0], TensorShape.Nchw(1, 64, 6, 9), storage);
            using var w1 = b.Upload(values[1], TensorShape.Nchw(64, 64, 3, 3), storage);
            using var b1 = b.Upload(values[2], new TensorShape(64));
            using var gamma = b.Upload(values[3], new TensorShape(64));
            using var beta = b.Upload(values[4], new TensorShape(64));
            using var w2 = b.Upload(values[5], TensorShape.Nchw(64, 64, 3, 3), storage);
            using var h = b.Conv2d(x, w1, b1, Conv2dSpec.Same);
            Assert.That(((CpuTensor)h).Moments, Is.Not.Null, "the Winograd epilogue gathered moments");
            using var y = b.NormConv2d(h, new GroupNormSpec(gamma, beta, 32, 1e-6f, Silu: true), w2, null, Conv2dSpec.Same);
            var result = new float[y.ElementCount];
            b.Download(y, result);
            return result;
        }
        using var full = new CpuBackend(threads: Threads);
        using var half = new CpuBackend(threads: Threads, storage: dtype);
        var expected = Run(full, DType.F32);
        var actual = Run(half, dtype);
        double scale = expected.Max(v => Math.Abs(v));
        double worst = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max();
        TestContext.Out.WriteLine($"{dtype}: max abs difference {worst:E2} at output scale {scale:F2}");
        Assert.That(worst, Is.LessThanOrEqualTo(relativeTolerance * scale), $"{dtype} winograd then norm-conv against fp32");
    }

    [TestCaseSource(nameof(SixteenBit))]
    public void GroupNormIsTheFp32ResultRounded(DType dtype) =>
        // 96 x 7 x 7 per group spans segments of the statistics pass: 3 channels x 49 is not a segment multiple.
        AssertRounded(dtype, "group_norm", [T(3, 2, 96, 47, 53), T(1, 96), T(1, 96)],
            (b, t) => b.GroupNorm(t[0], t[1], t[2], 32, 1e-6f, fuseSilu: true));

    [TestCaseSource(nameof(SixteenBit))]
    public void ChannelAffineIsTheFp32ResultRounded(DType dtype) =>
        // Scale and shift [N, C] arrive in 16 bits too (rank 2): the backend widens them.
        AssertRounded(dtype, "channel_affine", [T(3, 2, 5, 67, 71), T(1, 2, 5), T(1, 2, 5)],
            (b, t) => b.ChannelAffine(t[0], t[1], t[2], fuseSilu: true));

    [TestCaseSource(nameof(SixteenBit))]
    public void ElementwiseOpsAreTheFp32ResultRounded(DType dtype)
    {
        // 5 x 163 x 167 = 136105 elements: two full items of 65536 and a tail.
        var shape = new[] { 1, 5, 163, 167 };
        AssertRounded(dtype, "add", [T(4, shape), T(4, shape)], (b, t) => b.Add(t[0], t[1]));
        AssertRounded(dtype, "silu", [T(4, shape)], (b, t) => b.Unary(UnaryOp.Silu, t[0]));
        AssertRounded(dtype, "tanh clamp", [T(9, shape)], (b, t) => b.Unary(UnaryOp.TanhClamp3, t[0]));
        AssertRounded(dtype, "scale shift", [T(4, shape)], (b, t) => b.ScaleShift(t[0], 0.18215f, -0.1f));
        AssertRounded(dtype, "slice", [T(4, 2, 7, 5, 3)], (b, t) => b.SliceChannels(t[0], 2, 4));
    }

    [TestCaseSource(nameof(SixteenBit))]
    public void AttentionIsTheFp32ResultRounded(DType dtype) =>
        AssertRounded(dtype, "attention", [T(1, 1, 37, 5, 7), T(1, 1, 37, 5, 7), T(1, 1, 37, 5, 7)],
            (b, t) => b.Attention(t[0], t[1], t[2], 1 / MathF.Sqrt(37)));

    [TestCaseSource(nameof(SixteenBit))]
    public void ImagesConvertToAndFrom16BitTensors(DType dtype)
    {
        const int n = 2, h = 5, w = 37;
        var rgb = new byte[n * h * w * 3];
        new Random(3).NextBytes(rgb);
        using var full = new CpuBackend(threads: Threads);
        using var half = new CpuBackend(threads: Threads, storage: dtype);
        using var x32 = full.ImageToTensor(rgb, n, h, w, 2f, -1f);
        using var x16 = half.ImageToTensor(rgb, n, h, w, 2f, -1f);
        var values32 = new float[x32.ElementCount];
        var values16 = new float[x16.ElementCount];
        full.Download(x32, values32);
        half.Download(x16, values16);
        Assert.That(x16.DType, Is.EqualTo(DType.F32), "an image tensor stays fp32: 16-bit storage does not quantise pixels");
        Assert.That(values16, Is.EqualTo(values32), "image to tensor: the fp32 values");

        // A 16-bit tensor still converts to an image (explicitly uploaded as such).
        var onGrid = OnGrid(dtype, Random(5, x32.ElementCount, 1.2f));
        var back32 = new byte[rgb.Length];
        var back16 = new byte[rgb.Length];
        using var g32 = full.Upload(onGrid, x16.Shape);
        using var g16 = half.Upload(onGrid, x16.Shape, dtype);
        Assert.That(g16.DType, Is.EqualTo(dtype));
        full.TensorToImage(g32, back32, 0.5f, 0.5f);
        half.TensorToImage(g16, back16, 0.5f, 0.5f);
        Assert.That(back16, Is.EqualTo(back32), "tensor to image reads the 16-bit values as the fp32 backend reads them widened");
    }

    [TestCaseSource(nameof(SixteenBit))]
    public void ImageShapedOutputsStayFp32(DType dtype)
    {
        using var half = new CpuBackend(threads: Threads, storage: dtype);
        using var x = half.Upload(Random(9, 4 * 5 * 6, 1), TensorShape.Nchw(1, 4, 5, 6), dtype);
        using var w = half.Upload(Random(10, 3 * 4 * 9, 0.3f), TensorShape.Nchw(3, 4, 3, 3), dtype);
        using var y = half.Conv2d(x, w, null, Conv2dSpec.Same);
        Assert.That(y.DType, Is.EqualTo(DType.F32), "a decoder's image output [N, 3, H, W] is stored in fp32");
        Assert.That(((IBackend)half).ActivationDType(TensorShape.Nchw(1, 4, 5, 6)), Is.EqualTo(dtype));
    }

    [TestCaseSource(nameof(SixteenBit))]
    public void NonFiniteValuesAreCountedIn16Bits(DType dtype)
    {
        using var half = new CpuBackend(threads: Threads, storage: dtype);
        var values = new float[70001];
        values[3] = float.NaN;
        values[65540] = float.PositiveInfinity;
        values[70000] = 1e30f; // finite in bf16, infinity in fp16
        using var t = half.Upload(values, TensorShape.Nchw(1, 1, 1, values.Length), dtype);
        Assert.That(half.CountNonFinite(t), Is.EqualTo(dtype == DType.F16 ? 3 : 2));
    }

    [TestCaseSource(nameof(SixteenBit))]
    public void SixteenBitTensorsTakeHalfTheBytes(DType dtype)
    {
        using var half = new CpuBackend(threads: Threads, storage: dtype);
        long before = half.Memory.LiveBytes;
        using var t = half.Upload(new float[1 << 20], TensorShape.Nchw(1, 4, 512, 512), dtype);
        Assert.That(t.ByteLength, Is.EqualTo(2L << 20));
        Assert.That(half.Memory.LiveBytes - before, Is.EqualTo(2L << 20), "the pool holds 2 bytes per element");
    }
}
