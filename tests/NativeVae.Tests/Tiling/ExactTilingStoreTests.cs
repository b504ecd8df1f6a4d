using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Tiling;
using NativeVae.Weights;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// Exact tiling on the CPU keeps its activations in a temporary file: the result equals untiled, the file lives only
/// as long as the call (success, cancellation, failure), and a store that cannot be created fails before any work.
/// </summary>
public class ExactTilingStoreTests
{
    private const double MaxAbsError = 1e-4;

    /// <summary>Divides none of the layer sizes below (latent 12x10 up to 48x40; images 40x24 down to 5x3).</summary>
    private const int Tile = 7;

    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("nativevae-exact-store-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    /// <summary>A small SD-architecture VAE whose exact tiling spills to the file store (with room, it keeps its activations in memory).</summary>
    private Vae Create(InMemoryWeights? weights = null)
    {
        var config = AutoencoderKlConfig.Small;
        var model = new AutoencoderKlModel(TestBackends.Get(TestBackends.CpuName), config,
            weights ?? InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        return new Vae(model, new VaeOptions { ExactStore = ExactTilingStore.File }, null, null, ownsBackend: false)
            { ExactStoreDirectory = _folder, SmallestExactTile = Tile };
    }

    private static HostTensor<float> Images() =>
        new(TensorShape.Nchw(1, 3, 40, 24), SeededWeights.Uniform(SeededWeights.DefaultSeed, "store.image", 3 * 40 * 24));

    private static HostTensor<float> Latents() =>
        new(TensorShape.Nchw(1, 4, 12, 10), SeededWeights.Uniform(SeededWeights.DefaultSeed, "store.latent", 4 * 12 * 10));

    private static DecodeOptions Exact(IProgress<VaeProgress>? progress = null) =>
        new() { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Exact, TileSize = Tile, Progress = progress };

    [Test]
    public void DecodeAndEncodeThroughTheStoreEqualUntiled()
    {
        using var vae = Create();
        var latents = Latents();
        using var whole = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.None });
        using var tiled = vae.Decode(latents, Exact());
        var expected = whole.FloatTensor!;
        NumericAssert.Close(tiled.FloatTensor!.Data, expected.Data, expected.Shape, MaxAbsError, 0, "decode through the store");

        var images = Images();
        var encoded = vae.EncodeMoments(images, new EncodeOptions { Tiling = TilingMode.None });
        var encodedTiled = vae.EncodeMoments(images, new EncodeOptions { Tiling = TilingMode.Exact, TileSize = Tile });
        NumericAssert.Close(encodedTiled.Data, encoded.Data, encoded.Shape, MaxAbsError, 0, "encode through the store");
    }

    [Test]
    public void TheStoreHoldsWhatTheDryRunPlannedWithinTenPercent()
    {
        // The plan, checked against the disk's free space before any work, replays the dry run's allocations through
        // the store's allocator; the store reuses what the call frees, so it holds the live activations plus the
        // allocator's fragmentation, never a copy per op.
        using var vae = Create();
        var latents = Latents();
        long peakLive = vae.PlanDecode(latents.Shape, Exact()).ActivationPeakBytes;
        long planned = vae.PlannedStoreBytes(latents.Shape, encode: false);
        using (vae.Decode(latents, Exact())) { }
        long measured = vae.LastExactSpaceBytes;
        TestContext.Out.WriteLine($"decode {latents.Shape}: peak live {peakLive} bytes, planned {planned}, the store held {measured}");
        Assert.That(measured, Is.InRange(planned * 0.9, planned * 1.1));
        Assert.That(measured, Is.GreaterThanOrEqualTo(peakLive).And.LessThan(peakLive * 1.25), "live activations plus some fragmentation");

        var images = Images();
        var encode = new EncodeOptions { Tiling = TilingMode.Exact, TileSize = Tile };
        vae.PlanEncode(images.Shape, encode);
        long plannedEncode = vae.PlannedStoreBytes(images.Shape, encode: true);
        vae.EncodeMoments(images, encode);
        TestContext.Out.WriteLine($"encode {images.Shape}: planned {plannedEncode} bytes, the store held {vae.LastExactSpaceBytes}");
        Assert.That(vae.LastExactSpaceBytes, Is.InRange(plannedEncode * 0.9, plannedEncode * 1.1));
    }

    [TestCase(DType.BF16)]
    [TestCase(DType.F16)]
    public void ASixteenBitBackendTilesThroughASixteenBitStoreCloseToItsUntiledResult(DType dtype)
    {
        // The tiles read the values the untiled run stores (on the 16-bit grid), but a GroupNorm's statistics come
        // from the rounded tiles rather than the untiled convolution's fp32 epilogue: close, not bit-equal.
        var config = AutoencoderKlConfig.Small;
        using var backend = new NativeVae.Backends.Cpu.CpuBackend(threads: 2, storage: dtype);
        var model = new AutoencoderKlModel(backend, config, InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        using var vae = new Vae(model, new VaeOptions { DType = dtype, ExactStore = ExactTilingStore.File }, null, null, ownsBackend: false)
            { ExactStoreDirectory = _folder, SmallestExactTile = Tile };
        using (var space = ActivationSpace.InFile(_folder, 0, backend.StorageDType))
            Assert.That(space.Elements, Is.EqualTo(dtype), "the store keeps the backend's 16 bits");
        var latents = Latents();
        long before = VaeBenchmark.StoreTrafficBytes;
        using var whole = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.None });
        using var tiled = vae.Decode(latents, Exact());
        Assert.That(VaeBenchmark.StoreTrafficBytes, Is.GreaterThan(before), "the exact decode went through the store");
        var expected = whole.FloatTensor!.Data;
        double scale = expected.Max(v => Math.Abs(v));
        double worst = expected.Zip(tiled.FloatTensor!.Data, (e, a) => Math.Abs(e - a)).Max();
        TestContext.Out.WriteLine($"{dtype}: exact tiled against untiled, max abs {worst:E2} at scale {scale:F2}");
        Assert.That(worst, Is.LessThanOrEqualTo((dtype == DType.BF16 ? 2e-2 : 3e-3) * scale));
    }

    [Test]
    public void TheStoreFileIsOpenDuringACallAndGoneAfterIt()
    {
        using var vae = Create();
        int most = 0;
        using var result = vae.Decode(Latents(), Exact(new SynchronousProgress<VaeProgress>(_ => most = Math.Max(most, StoreFiles.Open(_folder)))));
        Assert.That(most, Is.EqualTo(1), "one store file while the call runs");
        Assert.That(StoreFiles.Open(_folder), Is.Zero, "none after it");
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.Empty);
    }

    [Test]
    public void ACancelledCallLeavesNoStoreFile()
    {
        using var vae = Create();
        using var cancel = new CancellationTokenSource();
        int seen = 0;
        var progress = new SynchronousProgress<VaeProgress>(_ =>
        {
            seen = StoreFiles.Open(_folder);
            cancel.Cancel();
        });
        Assert.That(async () => await vae.DecodeAsync(Latents(), Exact(progress), cancel.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(seen, Is.EqualTo(1), "the store was open when the call was cancelled");
        Assert.That(StoreFiles.Open(_folder), Is.Zero);
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.Empty);
    }

    [Test]
    public void AFailedCallLeavesNoStoreFile()
    {
        // A NaN bias makes the decoded image NaN, which the call refuses after the model has run through the store.
        using var vae = Create(SyntheticVae.SmallWithNaNOutputBias());
        int seen = 0;
        var progress = new SynchronousProgress<VaeProgress>(_ => seen = Math.Max(seen, StoreFiles.Open(_folder)));
        Assert.That(() => vae.Decode(Latents(), Exact(progress)), Throws.TypeOf<InvalidDataException>());
        Assert.That(seen, Is.EqualTo(1), "the store was open during the failed call");
        Assert.That(StoreFiles.Open(_folder), Is.Zero);
        Assert.That(Directory.GetFileSystemEntries(_folder), Is.Empty);
    }

    [Test]
    public void AStoreThatCannotBeCreatedFailsBeforeAnyWorkNamingTheDirectory()
    {
        // /proc takes no new files, even from root (CI), which a chmod'ed folder would not stop.
        var unusable = new List<string> { Path.Combine(_folder, "missing") };
        if (OperatingSystem.IsLinux()) unusable.Add("/proc");
        foreach (string directory in unusable)
        {
            using var vae = Create();
            vae.ExactStoreDirectory = directory;
            int reports = 0;
            Assert.That(() => vae.Decode(Latents(), Exact(new SynchronousProgress<VaeProgress>(_ => reports++))), Throws.TypeOf<IOException>()
                .With.Message.Contains($"'{directory}'").And.Message.Contains("activation store"), directory);
            Assert.That(reports, Is.Zero, $"{directory}: refused before any block ran");
        }
    }
}
