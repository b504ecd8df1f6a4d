using NativeVae.Backends.Cpu;
using NativeVae.Core;
using NativeVae.Tests.Kernels;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Backends.Cpu;

/// <summary>
/// What only the SIMD CPU backend has: convolution weights prepared (packed) once for the direct path, the tile planner's
/// choices on SD-sized layers, its buffer pool and argument checks. Its ops' numerics run with every other
/// backend's in tests/NativeVae.Tests/Kernels, at every vector width this machine accelerates.
/// </summary>
[TestFixture]
internal sealed class CpuBackendTests
{
    private const double Abs = 1e-4;
    private const double Rel = 1e-4;

    // A deep input overflows the pack budget: the tile planner cuts bands of one row and halves the column tiles.
    // ILGPU has no such path (and its emulator takes ~10 s over 640 channels), so this case runs here only.
    private static readonly Conv2dCase[] DeepConv =
        [new("3x3 s1 p1, 6x40, 640->4 (deep input)", 1, 640, 6, 40, 4, 3, 1, 1, 1, 1, 1, false, false, false)];

    private static IEnumerable<TestCaseData> DeepConvOnEveryWidth() => KernelBackends.Cases(KernelBackends.Cpu, DeepConv);

    [TestCaseSource(nameof(DeepConvOnEveryWidth))]
    public void DeepInputConv2dMatchesReference(string backendName, Conv2dCase c)
    {
        float[] actual = c.Run(KernelBackends.Get(backendName))[0];
        NumericAssert.Close(actual, c.Expected(), c.OutShape, Conv2dKernelTests.AbsTolerance, Conv2dKernelTests.RelTolerance,
            $"conv2d {backendName} {c.Name}");
    }

    private static IEnumerable<TestCaseData> ConvOnEveryWidth() =>
        KernelBackends.Cases(KernelBackends.Cpu, Conv2dKernelTests.Cases.Concat(DeepConv));

    [TestCaseSource(nameof(ConvOnEveryWidth))]
    public void APreparedWeightGivesWhatTheRowMajorOneGives(string backendName, Conv2dCase c)
    {
        // Models prepare their weights once (packed where the direct path reads them); each call on it gives the
        // row-major weight's output, bit for bit.
        var backend = KernelBackends.Get(backendName);
        var outputs = c.Run(backend, calls: 2, prepared: true);
        float[] rowMajor = c.Run(backend)[0];
        Assert.That(outputs[0], Is.EqualTo(rowMajor), $"conv2d {backendName} {c.Name}: prepared weight");
        Assert.That(outputs[1], Is.EqualTo(rowMajor), $"conv2d {backendName} {c.Name}: second call on the prepared weight");
    }

    // SD-sized layers, where the tile planner cuts bands, column tiles and the flat 1x1 runs differently from the
    // small cases. Few output channels and rows keep the cost down: the planner's choices depend on Cin and the width.
    // (cin, cout, h, w, spec name)
    private static readonly object[][] LargeConvShapes =
    [
        [128, 20, 12, 512, "Same"],
        [512, 12, 64, 64, "Same"],
        [512, 24, 64, 64, "Pointwise"],
        [128, 12, 16, 512, "DownsampleAsymmetric"],
        [256, 12, 16, 128, "UpsampleSame"],
    ];

    private static Conv2dSpec Spec(string name) => name switch
    {
        "Same" => Conv2dSpec.Same,
        "Pointwise" => Conv2dSpec.Pointwise,
        "DownsampleAsymmetric" => Conv2dSpec.DownsampleAsymmetric,
        "UpsampleSame" => Conv2dSpec.UpsampleSame,
        _ => throw new ArgumentException(name),
    };

    [TestCaseSource(nameof(LargeConvShapes))]
    public void LargeConv2dMatchesReference(int cin, int cout, int h, int w, string specName)
    {
        var spec = Spec(specName);
        int k = specName == "Pointwise" ? 1 : 3;
        var rng = new Random(77);
        float[] x = Values(rng, cin * h * w, 1);
        float[] weight = Values(rng, cout * cin * k * k, (float)(1 / Math.Sqrt(cin * k * k)));
        float[] bias = Values(rng, cout, 1);
        var g = Reference.ConvGeometry.Of(1, cin, h, w, cout, k, spec);
        var outShape = TensorShape.Nchw(1, cout, g.OutHeight, g.OutWidth);

        var backend = TestBackends.Get("cpu");
        using var tx = backend.Upload(x, TensorShape.Nchw(1, cin, h, w));
        using var tw = backend.Upload(weight, TensorShape.Nchw(cout, cin, k, k));
        using var tb = backend.Upload(bias, new TensorShape(cout));
        using var ty = backend.Conv2d(tx, tw, tb, spec);
        NumericAssert.Close(Download(backend, ty), Reference.Conv2d(g, x, weight, bias, null), outShape, Abs, Rel,
            $"conv2d {cin}->{cout} {h}x{w} {specName}");
    }

    private static IEnumerable<TestCaseData> GroupNormOnEveryWidth() => KernelBackends.Cases(KernelBackends.Cpu, GroupNormKernelTests.Cases);

    [TestCaseSource(nameof(GroupNormOnEveryWidth))]
    public void GroupNormWithoutStatisticsEqualsGroupNormWithThem(string backendName, GroupNormCase c)
    {
        // IBackend's GroupNorm allocates the statistics itself; the op tests check the overload that returns them.
        const float Eps = 1e-6f;
        var backend = (CpuBackend)KernelBackends.Get(backendName);
        using var tx = backend.Upload(c.X, c.Shape);
        using var tg = backend.Upload(c.Gamma, new TensorShape(c.Channels));
        using var tb = backend.Upload(c.Beta, new TensorShape(c.Channels));
        using var stats = backend.Allocate(new TensorShape(c.Batch, c.Groups, 2));
        using var withStats = backend.GroupNorm(tx, tg, tb, c.Groups, Eps, c.Silu, stats);
        using var viaInterface = ((IBackend)backend).GroupNorm(tx, tg, tb, c.Groups, Eps, c.Silu);
        Assert.That(Download(backend, viaInterface), Is.EqualTo(Download(backend, withStats)), $"group_norm {backendName} {c.Name} via IBackend");
    }

    /// <summary>
    /// A fused ReLU (Conv2dSpec.Relu) is the conv then ReLU bit for bit, with a residual, on the direct path (5 to 7
    /// channels) and on Winograd (64 to 64), in fp32 and bf16 storage; and it returns no moments, since those its
    /// epilogue gathers are the values' before the ReLU.
    /// </summary>
    [TestCase(5, 7, DType.F32)]
    [TestCase(64, 64, DType.F32)]
    [TestCase(5, 7, DType.BF16)]
    [TestCase(64, 64, DType.BF16)]
    public void AFusedReluIsTheConvThenReluBitForBit(int inChannels, int outChannels, DType storage)
    {
        using var backend = new CpuBackend(storage: storage);
        Assert.That(backend.Capabilities.FusesConvRelu);
        var rng = new Random(6);
        var inShape = TensorShape.Nchw(2, inChannels, 11, 9);
        var outShape = TensorShape.Nchw(2, outChannels, 11, 9);
        using var x = backend.Upload(Values(rng, (int)inShape.ElementCount, 1), inShape, storage);
        using var w = backend.PrepareConvWeight(backend.Upload(Values(rng, outChannels * inChannels * 9, 0.1f),
            TensorShape.Nchw(outChannels, inChannels, 3, 3), storage), Conv2dSpec.Same);
        using var bias = backend.Upload(Values(rng, outChannels, 1), new TensorShape(outChannels));
        using var residual = backend.Upload(Values(rng, (int)outShape.ElementCount, 1), outShape, storage);
        var plain = backend.Conv2dRegion(x, null, w, bias, Conv2dSpec.Same, residual, moments: ConvMoments.Host);
        var fused = backend.Conv2dRegion(x, null, w, bias, Conv2dSpec.Same with { Relu = true }, residual, moments: ConvMoments.Host);
        using (plain.Output)
        using (fused.Output)
        {
            var expected = Download(backend, plain.Output).Select(v => Math.Max(v, 0f)).ToArray();
            Assert.That(expected.Count(v => v == 0), Is.GreaterThan(expected.Length / 4), "the ReLU clips a good share of the outputs");
            Assert.That(Download(backend, fused.Output), Is.EqualTo(expected), $"{storage.ShortName()} {inChannels} -> {outChannels}");
            Assert.That(fused.Moments, Is.Null, "no moments of the values before the ReLU");
            if (inChannels == 64) Assert.That(plain.Moments, Is.Not.Null, "Winograd's epilogue gathers them without a ReLU");
        }
    }

    [Test]
    public void RepeatedOpsReuseBuffers()
    {
        using var backend = new CpuBackend();
        var rng = new Random(3);
        using var x = backend.Upload(Values(rng, 2 * 32 * 20 * 24, 1), TensorShape.Nchw(2, 32, 20, 24));
        using var w = backend.PrepareConvWeight(backend.Upload(Values(rng, 32 * 32 * 9, 0.05f), TensorShape.Nchw(32, 32, 3, 3)), Conv2dSpec.Same);
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
        using var w = backend.PrepareConvWeight(backend.Upload(weights, TensorShape.Nchw(7, 5, 3, 3)), Conv2dSpec.Same);
        Assert.That(((CpuTensor)w).PackedConvWeights, Is.Not.Null, "5 input channels: the direct path's weight is packed");
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
        w = backend.PrepareConvWeight(w, Conv2dSpec.Same);
        // Packed as [ceil(6 / 4) blocks][8 ci][9 taps][4 rows] floats, which replace the row-major copy.
        long packed = 2L * 8 * 9 * 4 * sizeof(float);
        Assert.That(backend.Memory.LiveBytes, Is.EqualTo(x.ByteLength + packed), "the packing is the weight's only copy");
        // The pack tile lives in worker scratch.
        using (backend.Conv2d(x, w, null, Conv2dSpec.Same)) { }
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
        Assert.Throws<ArgumentException>(() => backend.Upload(new float[3], new TensorShape(4), DType.F16));
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
