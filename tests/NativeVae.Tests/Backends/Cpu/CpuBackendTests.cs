using NativeVae.Backends;
using NativeVae.Backends.Cpu;
using NativeVae.Kernels.Cpu;
using NativeVae.Tensors;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Backends.Cpu;

/// <summary>
/// Every op of the SIMD CPU backend against the double-accumulator references, at every vector width this
/// machine accelerates (so the 512-, 256-, 128-bit and scalar paths all run here), odd sizes and edge cases.
/// </summary>
[TestFixture]
internal sealed class CpuBackendTests
{
    private const double Abs = 1e-4;
    private const double Rel = 1e-4;

    private static IEnumerable<SimdWidth> Widths() =>
        Enum.GetValues<SimdWidth>().Where(w => w <= SimdWidths.Best);

    private static IEnumerable<TestCaseData> With(IEnumerable<object[]> cases) =>
        from c in cases
        from w in Widths()
        select new TestCaseData(c.Append(w).ToArray()).SetArgDisplayNames(c.Select(o => o?.ToString() ?? "null").Append(w.ToString()).ToArray());

    // (batch, cin, h, w, cout, kernel, spec name, bias, residual)
    private static readonly object[][] ConvShapes =
    [
        [1, 3, 1, 1, 5, 3, "Same", true, false],
        [1, 5, 7, 5, 6, 3, "Same", true, true],
        [2, 16, 9, 20, 17, 3, "Same", false, true],
        [1, 96, 6, 10, 8, 3, "Same", true, false],
        [1, 4, 3, 300, 5, 3, "Same", true, true],
        [1, 640, 6, 40, 4, 3, "Same", false, false],
        [2, 96, 4, 8, 33, 1, "Pointwise", true, true],
        [1, 7, 5, 3, 9, 1, "Pointwise", true, false],
        [1, 8, 9, 10, 12, 3, "DownsampleAsymmetric", true, false],
        [2, 5, 8, 7, 6, 3, "Stride2Pad1", true, true],
        [1, 6, 5, 3, 7, 3, "UpsampleSame", true, true],
        [1, 3, 1, 1, 4, 3, "UpsampleSame", false, false],
        [1, 3, 8, 9, 4, 5, "Pad2", true, false],
        [1, 4, 6, 7, 3, 3, "Valid", false, false],
    ];

    private static Conv2dSpec Spec(string name) => name switch
    {
        "Same" => Conv2dSpec.Same,
        "Pointwise" => Conv2dSpec.Pointwise,
        "DownsampleAsymmetric" => Conv2dSpec.DownsampleAsymmetric,
        "Stride2Pad1" => Conv2dSpec.Stride2Pad1,
        "UpsampleSame" => Conv2dSpec.UpsampleSame,
        "Pad2" => new Conv2dSpec(1, 2, 2, 2, 2),
        "Valid" => new Conv2dSpec(1, 0, 0, 0, 0),
        _ => throw new ArgumentException(name),
    };

    private static IEnumerable<TestCaseData> ConvCases() => With(ConvShapes);

    [TestCaseSource(nameof(ConvCases))]
    public void Conv2dMatchesReference(int n, int cin, int h, int w, int cout, int k, string specName, bool hasBias, bool hasResidual, SimdWidth width)
    {
        var spec = Spec(specName);
        var rng = new Random(1234 + cin * 31 + h);
        float[] x = Values(rng, n * cin * h * w, 1);
        float[] weight = Values(rng, cout * cin * k * k, (float)(1 / Math.Sqrt(cin * k * k)));
        float[]? bias = hasBias ? Values(rng, cout, 1) : null;
        int ho = spec.OutputHeight(h, k), wo = spec.OutputWidth(w, k);
        float[]? residual = hasResidual ? Values(rng, n * cout * ho * wo, 1) : null;
        float[] expected = ReferenceOps.Conv2d(x, n, cin, h, w, weight, cout, k, bias, spec, residual, out _, out _);

        using var backend = new CpuBackend(width);
        using var tx = backend.Upload(x, TensorShape.Nchw(n, cin, h, w));
        using var tw = backend.Upload(weight, TensorShape.Nchw(cout, cin, k, k));
        using var tb = bias is null ? null : backend.Upload(bias, new TensorShape(cout));
        using var tr = residual is null ? null : backend.Upload(residual, TensorShape.Nchw(n, cout, ho, wo));
        // Twice: the second call runs on the packed weights cached by the first.
        for (int run = 0; run < 2; run++)
        {
            using var ty = backend.Conv2d(tx, tw, tb, spec, tr);
            Assert.That(ty.Shape, Is.EqualTo(TensorShape.Nchw(n, cout, ho, wo)));
            Compare.Close(expected, Download(backend, ty), Abs, Rel, $"conv2d run {run}", Compare.Nchw(cout, ho, wo));
        }
    }

    // SD-sized layers, where the tile planner cuts bands, column tiles and the flat 1x1 runs differently from the
    // small cases: every output is computed, a fixed sample of them is checked against the reference.
    // Few output channels and rows keep the cost down: the planner's choices depend on Cin and the width.
    // (cin, cout, h, w, spec name)
    private static readonly object[][] LargeConvShapes =
    [
        [128, 20, 12, 512, "Same"],
        [512, 12, 64, 64, "Same"],
        [512, 24, 64, 64, "Pointwise"],
        [128, 12, 16, 512, "DownsampleAsymmetric"],
        [256, 12, 16, 128, "UpsampleSame"],
    ];

    [TestCaseSource(nameof(LargeConvShapes))]
    public void LargeConv2dMatchesReferenceAtSamples(int cin, int cout, int h, int w, string specName)
    {
        const int Samples = 3000;
        var spec = Spec(specName);
        int k = specName == "Pointwise" ? 1 : 3;
        var rng = new Random(77);
        float[] x = Values(rng, cin * h * w, 1);
        float[] weight = Values(rng, cout * cin * k * k, (float)(1 / Math.Sqrt(cin * k * k)));
        float[] bias = Values(rng, cout, 1);
        int ho = spec.OutputHeight(h, k), wo = spec.OutputWidth(w, k);
        int hv = spec.Upsample2x ? 2 * h : h, wv = spec.Upsample2x ? 2 * w : w;

        using var backend = new CpuBackend();
        using var tx = backend.Upload(x, TensorShape.Nchw(1, cin, h, w));
        using var tw = backend.Upload(weight, TensorShape.Nchw(cout, cin, k, k));
        using var tb = backend.Upload(bias, new TensorShape(cout));
        using var ty = backend.Conv2d(tx, tw, tb, spec);
        float[] actual = Download(backend, ty);

        var expected = new float[Samples];
        var got = new float[Samples];
        var where = new int[Samples];
        for (int s = 0; s < Samples; s++)
        {
            // Corners and edges first, then random outputs.
            int co = rng.Next(cout);
            int oy = s < 4 ? (s % 2) * (ho - 1) : rng.Next(ho), ox = s < 4 ? (s / 2) * (wo - 1) : rng.Next(wo);
            double acc = bias[co];
            for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
            {
                int yv = oy * spec.Stride - spec.PadTop + ky, xv = ox * spec.Stride - spec.PadLeft + kx;
                if (yv < 0 || yv >= hv || xv < 0 || xv >= wv) continue;
                int iy = spec.Upsample2x ? yv / 2 : yv, ix = spec.Upsample2x ? xv / 2 : xv;
                acc += (double)x[(ci * h + iy) * w + ix] * weight[((co * cin + ci) * k + ky) * k + kx];
            }
            where[s] = (co * ho + oy) * wo + ox;
            expected[s] = (float)acc;
            got[s] = actual[where[s]];
        }
        Compare.Close(expected, got, Abs, Rel, $"conv2d {cin}->{cout} {h}x{w} {specName}", i => Compare.Nchw(cout, ho, wo)(where[i]));
    }

    // (batch, channels, h, w, groups, silu, mean offset)
    private static IEnumerable<TestCaseData> GroupNormCases() => With(
    [
        [1, 4, 1, 1, 2, true, 0f],
        [2, 96, 7, 5, 32, true, 0f],
        [1, 64, 9, 13, 4, false, 0f],
        [1, 128, 16, 16, 8, true, 50f],
        [2, 12, 33, 17, 4, false, -3f],
    ]);

    [TestCaseSource(nameof(GroupNormCases))]
    public void GroupNormMatchesReference(int n, int c, int h, int w, int groups, bool silu, float offset, SimdWidth width)
    {
        const float Eps = 1e-6f;
        var rng = new Random(99 + c + h);
        float[] x = Values(rng, n * c * h * w, 2).Select(v => v + offset).ToArray();
        float[] gamma = Values(rng, c, 1), beta = Values(rng, c, 1);
        float[] expected = ReferenceOps.GroupNorm(x, n, c, h * w, groups, gamma, beta, Eps, silu, out double[] stats);

        using var backend = new CpuBackend(width);
        using var tx = backend.Upload(x, TensorShape.Nchw(n, c, h, w));
        using var tg = backend.Upload(gamma, new TensorShape(c));
        using var tb = backend.Upload(beta, new TensorShape(c));
        using var ts = backend.Allocate(new TensorShape(n, groups, 2));
        using var ty = backend.GroupNorm(tx, tg, tb, groups, Eps, silu, ts);
        Compare.Close(expected, Download(backend, ty), 1e-4, 1e-4, "group_norm output", Compare.Nchw(c, h, w));
        // One-element groups have variance 0: rstd is 1/sqrt(eps), large, and only as exact as fp32.
        Compare.Close(stats.Select(s => (float)s).ToArray(), Download(backend, ts), 1e-5, 1e-4, "group_norm (mean, rstd)");

        using var viaInterface = ((IBackend)backend).GroupNorm(tx, tg, tb, groups, Eps, silu);
        Compare.Close(expected, Download(backend, viaInterface), 1e-4, 1e-4, "group_norm via IBackend");
    }

    // (batch, channels, h, w)
    private static IEnumerable<TestCaseData> AttentionCases() => With(
    [
        [1, 3, 1, 1],
        [2, 5, 7, 5],
        [1, 96, 9, 11],
        [1, 20, 16, 17],
        [1, 512, 8, 8],
    ]);

    [TestCaseSource(nameof(AttentionCases))]
    public void AttentionMatchesReference(int n, int c, int h, int w, SimdWidth width)
    {
        var rng = new Random(7 + c + h * w);
        int count = n * c * h * w;
        float[] q = Values(rng, count, 2), k = Values(rng, count, 2), v = Values(rng, count, 1);
        float scale = (float)(1 / Math.Sqrt(c));
        float[] expected = ReferenceOps.Attention(q, k, v, n, c, h * w, scale);

        using var backend = new CpuBackend(width);
        var shape = TensorShape.Nchw(n, c, h, w);
        using var tq = backend.Upload(q, shape);
        using var tk = backend.Upload(k, shape);
        using var tv = backend.Upload(v, shape);
        using var ty = backend.Attention(tq, tk, tv, scale);
        Compare.Close(expected, Download(backend, ty), 1e-4, 1e-4, "attention", Compare.Nchw(c, h, w));
    }

    private static IEnumerable<TestCaseData> ElementwiseCases() => With(
    [
        [1, 1, 1, 1],
        [1, 3, 7, 5],
        [2, 5, 33, 17],
        [1, 4, 256, 300],
    ]);

    [TestCaseSource(nameof(ElementwiseCases))]
    public void ElementwiseOpsMatchReference(int n, int c, int h, int w, SimdWidth width)
    {
        var rng = new Random(5 + h * w);
        int count = n * c * h * w;
        // Wide range so that SiLU's and the soft clamp's saturated ends are exercised.
        float[] a = Values(rng, count, 30), b = Values(rng, count, 3);
        var shape = TensorShape.Nchw(n, c, h, w);
        using var backend = new CpuBackend(width);
        using var ta = backend.Upload(a, shape);
        using var tb = backend.Upload(b, shape);
        foreach (var op in Enum.GetValues<UnaryOp>())
        {
            using var ty = backend.Unary(op, ta);
            Compare.Close(a.Select(x => (float)ReferenceOps.Unary(op, x)).ToArray(), Download(backend, ty), 1e-5, 1e-5, $"{op}");
        }
        using var sum = backend.Add(ta, tb);
        Compare.Close(a.Zip(b, (x, y) => x + y).ToArray(), Download(backend, sum), 0, 0, "add");
        using var affine = backend.ScaleShift(ta, 0.18215f, -0.5f);
        Compare.Close(a.Select(x => (float)(x * 0.18215 - 0.5)).ToArray(), Download(backend, affine), 1e-6, 1e-6, "scale_shift");
    }

    [TestCase(1, 1, 1)]
    [TestCase(2, 7, 5)]
    [TestCase(1, 3, 40)]
    public void ImageConversionsMatchReference(int n, int h, int w)
    {
        var rng = new Random(11 + h);
        var rgb = new byte[n * h * w * 3];
        rng.NextBytes(rgb);
        using var backend = new CpuBackend();
        using var t = backend.ImageToTensor(rgb, n, h, w, 2f, -1f);
        Assert.That(t.Shape, Is.EqualTo(TensorShape.Nchw(n, 3, h, w)));
        float[] values = Download(backend, t);
        var expected = new float[values.Length];
        for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        for (int c = 0; c < 3; c++)
            expected[((b * 3 + c) * h + y) * w + x] = (float)(rgb[((b * h + y) * w + x) * 3 + c] / 255.0 * 2 - 1);
        Compare.Close(expected, values, 1e-6, 1e-6, "image_to_tensor", Compare.Nchw(3, h, w));

        var back = new byte[rgb.Length];
        backend.TensorToImage(t, back, 0.5f, 0.5f);
        Assert.That(back, Is.EqualTo(rgb), "tensor_to_image(image_to_tensor(rgb)) must give rgb back");

        // Out-of-range values clamp.
        using var wide = backend.Upload(Enumerable.Range(0, n * 3 * h * w).Select(i => i % 2 == 0 ? -5f : 5f).ToArray(), TensorShape.Nchw(n, 3, h, w));
        backend.TensorToImage(wide, back, 0.5f, 0.5f);
        for (int i = 0; i < back.Length; i++)
        {
            int b = i / (h * w * 3), pixel = i / 3 % (h * w), c = i % 3;
            int flat = (b * 3 + c) * h * w + pixel;
            Assert.That(back[i], Is.EqualTo(flat % 2 == 0 ? 0 : 255), $"clamped byte {i}");
        }
    }

    [Test]
    public void RepeatedOpsReuseBuffers()
    {
        using var backend = new CpuBackend();
        var rng = new Random(3);
        using var x = backend.Upload(Values(rng, 2 * 32 * 20 * 24, 1), TensorShape.Nchw(2, 32, 20, 24));
        using var w = backend.Upload(Values(rng, 32 * 32 * 9, 0.05f), TensorShape.Nchw(32, 32, 3, 3));
        void Step()
        {
            using var y = backend.Conv2d(x, w, null, Conv2dSpec.Same);
            using var z = backend.Unary(UnaryOp.Silu, y);
        }
        Step();
        var first = backend.Memory;
        for (int i = 0; i < 5; i++) Step();
        Assert.That(backend.Memory.PeakBytes, Is.EqualTo(first.PeakBytes), "the pool must serve repeated calls without new buffers");
        Assert.That(backend.Memory.LiveBytes, Is.EqualTo(first.LiveBytes), "only the inputs, packed weights and scratch stay live");
    }

    [Test]
    public void AConvWeightKeptOnlyAsItsPackingReadsBackUnchanged()
    {
        using var backend = new CpuBackend();
        var rng = new Random(5);
        using var x = backend.Upload(Values(rng, 2 * 5 * 7 * 6, 1), TensorShape.Nchw(2, 5, 7, 6));
        float[] weights = Values(rng, 7 * 5 * 9, 0.1f);
        using var w = backend.Upload(weights, TensorShape.Nchw(7, 5, 3, 3));
        var first = new float[2 * 7 * 7 * 6];
        using (var y = backend.Conv2d(x, w, null, Conv2dSpec.Same)) backend.Download(y, first);
        var readBack = new float[weights.Length];
        backend.Download(w, readBack);
        Assert.That(readBack, Is.EqualTo(weights), "the weight unpacked from its packing (7 output channels: a padded last block)");
        var second = new float[first.Length];
        using (var y = backend.Conv2d(x, w, null, Conv2dSpec.Same)) backend.Download(y, second);
        Assert.That(second, Is.EqualTo(first), "a read of the weight leaves its packing in use");
    }

    [Test]
    public void MemoryCountsPackedWeightsAndScratch()
    {
        using var backend = new CpuBackend();
        var rng = new Random(4);
        using var x = backend.Upload(Values(rng, 1 * 8 * 9 * 7, 1), TensorShape.Nchw(1, 8, 9, 7));
        var w = backend.Upload(Values(rng, 6 * 8 * 9, 0.05f), TensorShape.Nchw(6, 8, 3, 3));
        Assert.That(backend.Memory.LiveBytes, Is.EqualTo(x.ByteLength + w.ByteLength));
        using (backend.Conv2d(x, w, null, Conv2dSpec.Same)) { }
        // Packed as [ceil(6 / 4) blocks][8 ci][9 taps][4 rows] floats, which replace the row-major copy; the pack
        // tile lives in worker scratch.
        long packed = 2L * 8 * 9 * 4 * sizeof(float);
        var afterConv = backend.Memory;
        Assert.That(afterConv.LiveBytes, Is.GreaterThan(x.ByteLength + packed), "packed weights and the workers' pack scratch count as live");
        Assert.That(afterConv.PeakBytes, Is.GreaterThanOrEqualTo(afterConv.LiveBytes + afterConv.PooledBytes));
        w.Dispose();
        Assert.That(backend.Memory.LiveBytes, Is.EqualTo(afterConv.LiveBytes - packed), "freeing the weight frees its packing");
        backend.ResetPeakMemory();
        Assert.That(backend.Memory.PooledBytes, Is.Zero);
        Assert.That(backend.Memory.PeakBytes, Is.EqualTo(backend.Memory.LiveBytes), "a reset peak starts at the live bytes");
    }

    [Test]
    public void RejectsForeignAndMismatchedTensors()
    {
        using var backend = new CpuBackend();
        using var other = new CpuBackend();
        using var x = backend.Allocate(TensorShape.Nchw(1, 4, 5, 5));
        using var w = backend.Allocate(TensorShape.Nchw(8, 3, 3, 3));
        using var foreign = other.Allocate(TensorShape.Nchw(8, 4, 3, 3));
        Assert.Throws<ArgumentException>(() => backend.Conv2d(x, w, null, Conv2dSpec.Same));
        Assert.Throws<ArgumentException>(() => backend.Conv2d(x, foreign, null, Conv2dSpec.Same));
        Assert.Throws<ArgumentException>(() => backend.GroupNorm(x, x, x, 3, 1e-6f, false));
        Assert.Throws<ArgumentException>(() => backend.ImageToTensor(new byte[10], 1, 2, 2, 1, 0));
        Assert.Throws<NotSupportedException>(() => backend.Upload(new float[4], new TensorShape(4), DType.F16));
    }

    private static float[] Values(Random rng, int count, float magnitude)
    {
        var values = new float[count];
        for (int i = 0; i < count; i++) values[i] = (float)(rng.NextDouble() * 2 - 1) * magnitude;
        return values;
    }

    private static float[] Download(IBackend backend, Tensor t)
    {
        var values = new float[t.ElementCount];
        backend.Download(t, values);
        return values;
    }
}
