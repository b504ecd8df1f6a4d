using NativeVae.Core;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Tiling;
using NativeVae.Weights;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// The tiled executor's conv path, by the device calls it makes (a counting decorator over the CPU backend): a
/// GroupNorm + conv layer is one <see cref="IBackend.Conv2dRegion"/> per output strip, folding the statistics the
/// producing convolution returned; no affine pass, no stored normalised tensor, and a statistics pass only over a
/// tensor whose producer returned none. And the result equals the untiled ops.
/// </summary>
public class TiledExecutorTests
{
    private const double MaxAbsError = 1e-4;

    /// <summary>Strips of 49 / 11 = 4 rows over 13: 4 strips, the last ragged.</summary>
    private const int Tile = 7;

    private const int Channels = 64, Height = 13, Width = 11, Groups = 32;
    private const int TilesPerLayer = 4;
    private const float Eps = 1e-6f;

    private static float[] Values(string stream, long count, float scale = 1f) =>
        SeededWeights.Uniform(SeededWeights.DefaultSeed, stream, count).Select(v => v * scale).ToArray();

    /// <summary>The operands of conv1 then GroupNorm + SiLU + conv2, uploaded to <paramref name="device"/>.</summary>
    private sealed class Layers : IDisposable
    {
        /// <param name="weights">how the conv weights are stored: a 16-bit device's convs run in 16 bits on 16-bit weights.</param>
        public Layers(IBackend device, DType weights = DType.F32)
        {
            var weightShape = TensorShape.Nchw(Channels, Channels, 3, 3);
            W1 = device.Upload(Values("executor.w1", weightShape.ElementCount, 0.05f), weightShape, weights);
            W2 = device.Upload(Values("executor.w2", weightShape.ElementCount, 0.05f), weightShape, weights);
            Bias = device.Upload(Values("executor.bias", Channels), new TensorShape(Channels));
            Gamma = device.Upload(Values("executor.gamma", Channels).Select(v => 1 + v / 4).ToArray(), new TensorShape(Channels));
            Beta = device.Upload(Values("executor.beta", Channels), new TensorShape(Channels));
        }

        public Tensor W1 { get; }
        public Tensor W2 { get; }
        public Tensor Bias { get; }
        public Tensor Gamma { get; }
        public Tensor Beta { get; }

        public GroupNormSpec Norm => new(Gamma, Beta, Groups, Eps, Silu: true);

        public void Dispose()
        {
            foreach (var t in new[] { W1, W2, Bias, Gamma, Beta }) t.Dispose();
        }
    }

    private static readonly TensorShape InputShape = TensorShape.Nchw(1, Channels, Height, Width);

    private static float[] Download(IBackend ops, Tensor t)
    {
        var values = new float[t.ElementCount];
        ops.Download(t, values);
        return values;
    }

    /// <summary>
    /// Runs <paramref name="layer"/> on a seeded input untiled on the CPU and through the executor over a counting CPU
    /// backend, checks that the results agree, and returns the executor's device calls.
    /// </summary>
    private static CountingBackend RunBoth(Func<IBackend, Layers, Tensor, Tensor> layer)
    {
        var cpu = TestBackends.Get(TestBackends.CpuName);
        var counting = new CountingBackend(cpu);
        using var layers = new Layers(counting);
        var x = Values("executor.x", InputShape.ElementCount);
        float[] expected;
        using (var input = cpu.Upload(x, InputShape))
        using (var y = layer(cpu, layers, input))
            expected = Download(cpu, y);

        using var executor = new TiledExecutor(counting, Tile, ActivationSpace.InMemory());
        counting.Calls.Clear();
        using var tiledInput = executor.Upload(x, InputShape);
        using var tiledY = layer(executor, layers, tiledInput);
        NumericAssert.Close(Download(executor, tiledY), expected, InputShape, MaxAbsError, 0, "tiled against untiled");
        return counting;
    }

    [Test]
    public void AGroupNormedConvLayerIsOneRegionCallPerTileWithNoStatisticsPass()
    {
        var counting = RunBoth((ops, l, input) =>
        {
            using var h = ops.Conv2d(input, l.W1, l.Bias, Conv2dSpec.Same);
            return ops.NormConv2d(h, l.Norm, l.W2, null, Conv2dSpec.Same);
        });
        Assert.That(counting[nameof(IBackend.Conv2dRegion)], Is.EqualTo(2 * TilesPerLayer), "one region call per output strip and layer");
        foreach (string op in new[] { nameof(IBackend.GroupNormStatistics), nameof(IBackend.GroupNorm), nameof(IBackend.ChannelAffine),
                     nameof(IBackend.NormConv2d), nameof(IBackend.Conv2d) })
            Assert.That(counting[op], Is.Zero, $"{op}: the layer made no statistics pass and stored no normalised tensor");
    }

    [Test]
    public void OnADeviceAnUpsamplingConvSendsWholeInputRowsAndTheDeviceUpsamplesThem()
    {
        // ILGPU's CPU accelerator, a device with memory of its own: strips cut at odd rows, so each window of the
        // 2x-upsampled input starts and ends on an even row; the strip uploads its whole original rows (a quarter of
        // the upsampled window's values) and the conv upsamples them. The output comes back once.
        var ilgpu = TestBackends.Get("ilgpu-cpu");
        var counting = new CountingBackend(ilgpu);
        using var layers = new Layers(counting);
        var x = Values("executor.x", InputShape.ElementCount);
        float[] expected;
        using (var input = ilgpu.Upload(x, InputShape))
        using (var y = ilgpu.Conv2d(input, layers.W1, layers.Bias, Conv2dSpec.UpsampleSame))
            expected = Download(ilgpu, y);

        using var executor = new TiledExecutor(counting, Tile, ActivationSpace.InMemory());
        using var tiledInput = executor.Upload(x, InputShape);
        long uploadedBefore = counting.UploadedValues, downloadedBefore = counting.DownloadedValues;
        counting.Calls.Clear();
        using var tiledY = executor.Conv2d(tiledInput, layers.W1, layers.Bias, Conv2dSpec.UpsampleSame);
        long uploaded = counting.UploadedValues - uploadedBefore, downloaded = counting.DownloadedValues - downloadedBefore;
        NumericAssert.Close(Download(executor, tiledY), expected, tiledY.Shape, MaxAbsError, 0, "tiled against untiled");

        var strips = TilePlanner.ParityStrips(2 * Height, 2 * Width, Tile, parity: 1);
        long wholeRows = strips.Sum(strip =>
        {
            var rows = TilePlanner.Clip(TilePlanner.InputWindow(strip.Top, strip.Height, 1, 1, 3), 2 * Height);
            Assert.That(rows.Start % 2 + rows.Length % 2, Is.Zero, $"strip {strip}: its window starts and ends on whole input rows");
            return (long)rows.Length / 2 * Width * Channels;
        });
        Assert.That(counting[nameof(IBackend.Conv2dRegion)], Is.EqualTo(strips.Count), "one region call per strip");
        Assert.That(uploaded, Is.EqualTo(wholeRows), "each strip's original input rows, halo included, and nothing upsampled");
        Assert.That(downloaded, Is.EqualTo(tiledY.ElementCount), "the output, once");
    }

    [Test]
    public void ATensorNoConvolutionWroteGetsOneStatisticsPass()
    {
        var counting = RunBoth((ops, l, input) => ops.NormConv2d(input, l.Norm, l.W2, null, Conv2dSpec.Same));
        Assert.That(counting[nameof(IBackend.GroupNormStatistics)], Is.EqualTo(TilesPerLayer), "an uploaded tensor has no moments: one pass over its strips");
        Assert.That(counting[nameof(IBackend.Conv2dRegion)], Is.EqualTo(TilesPerLayer));
    }

    [Test]
    public void AnSdDecoderMeasuresOnlyWhatNoWinogradConvolutionGathered()
    {
        // The real SD decoder (seeded): every GroupNorm but two reads a Winograd convolution's output (3x3, 64+ channels,
        // moments from its epilogue). Two direct-path convolutions return none: conv_in (4 -> 512 channels) and the
        // mid-block attention's 1x1 output projection, so the resnet norm1 after each makes a statistics pass over the
        // latent's strips. The attention's own norm (its q, k, v read it) is applied per strip: the only ChannelAffine
        // calls. No normalised tensor is stored.
        var config = AutoencoderKlConfig.Sd;
        var counting = new CountingBackend(TestBackends.Get(TestBackends.CpuName));
        var model = new AutoencoderKlModel(counting, config,
            InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        var latentShape = TensorShape.Nchw(1, config.LatentChannels, 5, 3);
        var latents = Values("executor.latent", latentShape.ElementCount);

        float[] expected;
        using (var z = counting.Upload(latents, latentShape))
        using (var y = model.Decode(counting, z))
            expected = Download(counting, y);

        using var executor = new TiledExecutor(counting, Tile, ActivationSpace.InMemory());
        counting.Calls.Clear();
        using var tiledZ = executor.Upload(latents, latentShape);
        using var tiledY = model.Decode(executor, tiledZ);
        int latentStrips = TilePlanner.Strips(latentShape.H, latentShape.W, Tile).Count;
        Assert.That(counting[nameof(IBackend.Conv2dRegion)], Is.GreaterThan(0));
        Assert.That(counting[nameof(IBackend.GroupNormStatistics)], Is.EqualTo(2 * latentStrips), "passes over conv_in's and the attention's outputs");
        foreach (string op in new[] { nameof(IBackend.GroupNorm), nameof(IBackend.NormConv2d), nameof(IBackend.Conv2d) })
            Assert.That(counting[op], Is.Zero, op);
        Assert.That(counting[nameof(IBackend.ChannelAffine)], Is.EqualTo(latentStrips), "the mid-block attention's norm, per strip of the latent");
        NumericAssert.Close(Download(executor, tiledY), expected, tiledY.Shape, MaxAbsError, 0, "tiled decode against untiled");
    }

    /// <summary>
    /// Wan 2.2's shortcuts through the executor: a space to depth over two frames then a depth to space, each one
    /// device call per strip of its folded side (no halo: a strip of output rows reads exactly the input rows it
    /// folds), equal to the untiled ops.
    /// </summary>
    [Test]
    public void PixelShufflesRunStripByStripAndEqualUntiled()
    {
        const int ShuffleTile = 4;
        var cpu = TestBackends.Get(TestBackends.CpuName);
        var counting = new CountingBackend(cpu);
        var shape = TensorShape.Nchw(2, 6, 18, 10);
        var down = new PixelShuffleSpec(2, Frames: 2, Group: 4);
        var up = new PixelShuffleSpec(2, Frames: 2, Group: 4);
        var x = Values("executor.shuffle.x", shape.ElementCount);
        var earlier = Values("executor.shuffle.earlier", shape.ElementCount);
        Tensor Layer(IBackend ops, Tensor current, Tensor previous)
        {
            using var folded = ops.SpaceToDepth(current, previous, down);
            return ops.DepthToSpace(folded, up, 1);
        }
        float[] expected;
        using (var a = cpu.Upload(x, shape))
        using (var b = cpu.Upload(earlier, shape))
        using (var y = Layer(cpu, a, b))
            expected = Download(cpu, y);

        using var executor = new TiledExecutor(counting, ShuffleTile, ActivationSpace.InMemory());
        using var tiledX = executor.Upload(x, shape);
        using var tiledEarlier = executor.Upload(earlier, shape);
        counting.Calls.Clear();
        using var tiledY = Layer(executor, tiledX, tiledEarlier);
        NumericAssert.Close(Download(executor, tiledY), expected, shape, MaxAbsError, 0, "tiled shuffles against untiled");
        int strips = TilePlanner.Strips(shape.H / 2, shape.W / 2, ShuffleTile).Count;
        Assert.That(strips, Is.GreaterThan(1), "the folded side is cut into several strips");
        Assert.That(counting[nameof(IBackend.SpaceToDepth)], Is.EqualTo(shape.N * strips), "one call per output strip and image");
        Assert.That(counting[nameof(IBackend.DepthToSpace)], Is.EqualTo(shape.N * strips), "one call per input strip and image");
    }

    /// <summary>
    /// Attention of many tokens runs strip by strip: each strip of queries against each strip of keys, merged by
    /// their log-sum-exp, equal to whole attention; a store file or a space in memory holds only strips of it.
    /// </summary>
    [TestCase(DType.F32)]
    [TestCase(DType.BF16)]
    public void AttentionRunsAsStripsOfQueriesAgainstStripsOfKeys(DType storage)
    {
        const int AttentionTile = 5; // 25 / 9 = 2 rows per strip of the 7 x 9 map: 4 strips, the last ragged
        using var sixteenBit = storage == DType.F32 ? null : new NativeVae.Backends.Cpu.CpuBackend(storage: storage);
        var cpu = sixteenBit ?? TestBackends.Get(TestBackends.CpuName);
        var counting = new CountingBackend(cpu);
        var shape = TensorShape.Nchw(2, 19, 7, 9);
        float scale = 2f / MathF.Sqrt(shape.C);
        var q = Values("executor.attention.q", shape.ElementCount, 2f);
        var k = Values("executor.attention.k", shape.ElementCount, 2f);
        var v = Values("executor.attention.v", shape.ElementCount);
        float[] expected;
        using (var tq = cpu.Upload(q, shape))
        using (var tk = cpu.Upload(k, shape))
        using (var tv = cpu.Upload(v, shape))
        using (var y = cpu.Attention(tq, tk, tv, scale))
            expected = Download(cpu, y);

        using var executor = new TiledExecutor(counting, AttentionTile, ActivationSpace.InMemory());
        using var sq = executor.Upload(q, shape);
        using var sk = executor.Upload(k, shape);
        using var sv = executor.Upload(v, shape);
        counting.Calls.Clear();
        using var tiledY = executor.Attention(sq, sk, sv, scale);
        // bf16 storage rounds the strips' operands as the untiled call rounds the whole tensors: the same values.
        NumericAssert.Close(Download(executor, tiledY), expected, shape, storage == DType.F32 ? 1e-5 : 1e-2, 0, "strips against whole attention");
        int strips = TilePlanner.Strips(shape.H, shape.W, AttentionTile).Count;
        Assert.That(strips, Is.EqualTo(4));
        Assert.That(counting[nameof(IBackend.AttentionOverKeys)], Is.EqualTo(shape.N * strips * strips), "each query strip against each key strip");
        Assert.That(counting[nameof(IBackend.Attention)], Is.Zero, "no whole attention");
    }

    /// <summary>bf16 tiles against the untiled bf16 layers: the GroupNorm's statistics come from fp32 tiles before rounding.</summary>
    private const double Bf16MaxAbsError = 2e-2;

    /// <summary>ILGPU's emulator in fp32 and bf16, and the same on CUDA where a GPU is present (the device script runs those).</summary>
    private static IEnumerable<TestCaseData> PinnedDevices() =>
        from device in TestBackends.HasCuda ? new[] { TestBackends.IlgpuCpuName, TestBackends.CudaName } : [TestBackends.IlgpuCpuName]
        from storage in new[] { DType.F32, DType.BF16 }
        select new TestCaseData(device, storage).SetArgDisplayNames(device, storage.ToString());

    [TestCaseSource(nameof(PinnedDevices))]
    public void OnAPinnedSpaceEachTensorCrossesTheBusOnceEachWayAndTheHostWaitsOnlyForAGroupNormsStatistics(string device, DType storage)
    {
        // ILGPU's CPU accelerator runs the CUDA backend's code: the activation space is its page-locked memory, each
        // strip is copied straight between the space and the device (one copy per channel's rows) behind the ops on the
        // backend's stream, and the host waits only where it needs values: the tiles' statistics a GroupNorm folds.
        // A 16-bit device's feature maps are kept in the space in 16 bits, so they cross the bus in half the bytes,
        // converted on the device; the tiles' statistics stay fp32.
        var preference = device == TestBackends.CudaName ? DevicePreference.Cuda : DevicePreference.IlgpuCpu;
        var ilgpu = storage == DType.F32
            ? (NativeVae.Backends.Ilgpu.IlgpuBackend)TestBackends.Get(device)
            : TestBackends.Ilgpu(preference, storage);
        using var layers = new Layers(ilgpu, storage);
        var x = Values("executor.x", InputShape.ElementCount);
        Tensor Pair(IBackend ops, Tensor input)
        {
            using var h = ops.Conv2d(input, layers.W1, layers.Bias, Conv2dSpec.Same);
            return ops.NormConv2d(h, layers.Norm, layers.W2, null, Conv2dSpec.Same);
        }
        float[] expected;
        using (var input = ilgpu.Upload(x, InputShape))
        using (var y = Pair(ilgpu, input))
            expected = Download(ilgpu, y);

        // The ops go through a counter to the device; the copies go straight between the device and its pinned space.
        var counting = new CountingBackend(ilgpu);
        using var executor = new TiledExecutor(counting, Tile, ActivationSpace.InPinned(ilgpu, ilgpu.StorageDType, ilgpu.ActivationDType));
        Assert.That(executor.Space.IsPinned, "the space is the device's page-locked memory");
        using var tiledInput = executor.Upload(x, InputShape);
        using (Pair(executor, tiledInput)) { }   // the first pair also reads the GroupNorm's gamma and beta once
        var before = ilgpu.Transfers;
        counting.Calls.Clear();
        using var tiledY = Pair(executor, tiledInput);
        var pair = ilgpu.Transfers - before;
        NumericAssert.Close(Download(executor, tiledY), expected, InputShape, storage == DType.F32 ? MaxAbsError : Bf16MaxAbsError, 0,
            $"{storage.ShortName()} tiled against untiled");

        int strips = TilePlanner.Strips(Height, Width, Tile).Count;
        Assert.That(strips, Is.EqualTo(TilesPerLayer));
        const int Layers = 2, Kernel = 3;
        int elementBytes = storage.ByteSize();
        long tensorBytes = InputShape.ElementCount * elementBytes;
        // Each strip's window carries one halo row above and below where it meets another strip; the image's edge is padding.
        long haloBytes = (long)(strips - 1) * (Kernel - 1) * Width * Channels * elementBytes;
        // Each tile's (mean, M2) per channel go out beside its output, for the next GroupNorm.
        long statisticsBytes = (long)strips * Channels * 2 * sizeof(float);
        Assert.That(pair.FromPinnedBytes, Is.EqualTo(Layers * (tensorBytes + haloBytes)), $"each layer's input went to the device once, with its halo rows, in {storage.ShortName()}");
        Assert.That(pair.ToPinnedBytes, Is.EqualTo(Layers * (tensorBytes + statisticsBytes)), "each layer's output came back once, with its tiles' statistics");
        Assert.That(pair.HostToDevice, Is.EqualTo(2), "through staging: only the folded GroupNorm's scale and shift");
        Assert.That(pair.DeviceToHost, Is.Zero, "nothing downloaded through staging");
        Assert.That(pair.Synchronizations, Is.EqualTo(1), $"one host wait, for the statistics the GroupNorm folds; none per strip ({strips} per layer)");
        Assert.That(counting[nameof(IBackend.Conv2dRegion)], Is.EqualTo(Layers * strips), "one region call per strip per layer");
        // fp32 convs have no moments in their epilogue: a statistics pass runs over each tile on the device. The
        // tensor-core conv writes them as it stores the tile, so nothing reads the tile again.
        Assert.That(counting[nameof(IBackend.GroupNormStatistics)], Is.EqualTo(storage == DType.F32 ? Layers * strips : 0),
            "statistics passes over the tiles");
    }
}
