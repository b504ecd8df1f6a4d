using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Api;

/// <summary>
/// Untrusted tensors are checked before any work (issue 12): finite values, the pixel cap for decode outputs and
/// tensor inputs, and the memory budget for untiled and exact calls, each refused with a message naming the problem.
/// </summary>
public class VaeInputLimitsTests
{
    /// <summary>ILGPU's CPU accelerator: a device with memory of its own, as a GPU (exact tiling there saves memory).</summary>
    private const string DeviceBackend = "ilgpu-cpu";

    /// <summary>The exact tile floor for these tiny images (the library's, 16, would be their whole size).</summary>
    private const int TinyImageTile = 4;

    private static Vae Create(VaeOptions options, string backend = TestBackends.CpuName)
    {
        var config = AutoencoderKlConfig.Small;
        var model = new AutoencoderKlModel(TestBackends.Get(backend), config,
            InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        return new Vae(model, options, config.ScalingFactor, config.ShiftFactor, ownsBackend: false) { SmallestExactTile = TinyImageTile };
    }

    private static HostTensor<float> Latents(int h, int w) =>
        new(TensorShape.Nchw(1, 4, h, w), SeededWeights.Uniform(SeededWeights.DefaultSeed, "limits.latent", 4 * h * w));

    private static HostTensor<float> Images(int h, int w) =>
        new(TensorShape.Nchw(1, 3, h, w), SeededWeights.Uniform(SeededWeights.DefaultSeed, "limits.image", 3 * h * w));

    [Test]
    public void ALatentWithNaNIsRefusedNamingCountAndFirstIndex()
    {
        using var vae = Create(new VaeOptions());
        var latents = Latents(4, 5);
        latents.Data[1 * 20 + 2 * 5 + 3] = float.NaN;   // [0, 1, 2, 3]
        latents.Data[3 * 20] = float.PositiveInfinity;
        Assert.That(() => vae.Decode(latents),
            Throws.ArgumentException.With.Message.Contains("2 value(s) are NaN or infinite").And.Message.Contains("at [0, 1, 2, 3]"));
    }

    [Test]
    public void ADecodeThatMakesNaNIsAnErrorNotBlackPixels()
    {
        // Weights holding a NaN (or an fp16 overflow) make the model's output NaN, which TensorToImage would clamp to 0.
        var model = new AutoencoderKlModel(TestBackends.Get(TestBackends.CpuName), AutoencoderKlConfig.Small, SyntheticVae.SmallWithNaNOutputBias());
        using var vae = new Vae(model, new VaeOptions(), null, null, ownsBackend: false) { SmallestExactTile = TinyImageTile };
        foreach (var output in new[] { DecodeOutput.Images, DecodeOutput.FloatTensor })
            Assert.That(() => vae.Decode(Latents(4, 4), new DecodeOptions { Output = output }), Throws.TypeOf<InvalidDataException>()
                .With.Message.Contains("holds 64 NaN or infinite value(s)"), $"output {output}: channel 1 of an 8x8 image");
    }

    [Test]
    public void AnImageTensorWithInfinityIsRefused()
    {
        using var vae = Create(new VaeOptions());
        var images = Images(8, 8);
        images.Data[^1] = float.NegativeInfinity;
        Assert.That(() => vae.Encode(images), Throws.ArgumentException.With.Message.Contains("1 value(s) are NaN or infinite").And.Message.Contains("[0, 2, 7, 7]"));
    }

    [Test]
    public void DecodeRefusesAnOutputOverThePixelCap()
    {
        using var vae = Create(new VaeOptions { MaxImagePixels = 16 * 16 });
        using (var atTheCap = vae.Decode(Latents(8, 8), new DecodeOptions { Output = DecodeOutput.UInt8Tensor }))
            Assert.That(atTheCap.UInt8Tensor.Shape, Is.EqualTo(new TensorShape(1, 16, 16, 3)), "16x16 = the cap");
        Assert.That(() => vae.Decode(Latents(8, 9)), Throws.ArgumentException
            .With.Message.Contains("decode to 18x16 = 288 pixels per image, over the limit of 256"));
    }

    [Test]
    public void EncodeRefusesATensorOverThePixelCap()
    {
        using var vae = Create(new VaeOptions { MaxImagePixels = 8 * 8 });
        Assert.That(vae.Encode(Images(8, 8)).Shape, Is.EqualTo(TensorShape.Nchw(1, 4, 4, 4)), "at the cap");
        Assert.That(() => vae.Encode(Images(8, 10)), Throws.ArgumentException.With.Message.Contains("10x8 exceeds the limit of 64 pixels"));
    }

    [Test]
    public void UntiledAndExactCallsOverTheBudgetAreRefusedBeforeWork()
    {
        // 64 channels at 24x20 are 120 KiB a tensor: untiled, several are live; the attention (4 x 30 KiB, never tiled) fits.
        using var vae = Create(new VaeOptions { MemoryLimitBytes = 160 * 1024 }, DeviceBackend);
        var latents = Latents(12, 10);
        var (mode, tile) = vae.PlanAuto(latents, encode: false);
        Assert.That(mode, Is.EqualTo(TilingMode.Exact), "Auto tiles this call");
        Assert.That(() => vae.Decode(latents, new DecodeOptions { Tiling = TilingMode.None }),
            Throws.TypeOf<InsufficientMemoryException>().With.Message.Contains("untiled").And.Message.Contains("MiB are available").And.Message.Contains("TilingMode.Exact"));
        Assert.That(() => vae.Decode(latents, new DecodeOptions { Tiling = TilingMode.Exact, TileSize = 256 }),
            Throws.TypeOf<InsufficientMemoryException>().With.Message.Contains("exact-tiled with tile 256"));
        // The same call runs with the tile Auto chooses.
        using var fits = vae.Decode(latents, new DecodeOptions { Tiling = TilingMode.Exact, TileSize = tile, Output = DecodeOutput.FloatTensor });
        Assert.That(fits.FloatTensor.Shape, Is.EqualTo(TensorShape.Nchw(1, 3, 24, 20)));
    }

    [Test]
    public void AutoRefusesWhenNoTileFitsGivingBothFigures()
    {
        // 2 KiB holds the 6x5 latent's 12x10 output (1440 bytes) but no 4-element tile of 64 channels.
        using var vae = Create(new VaeOptions { MemoryLimitBytes = 2048 }, DeviceBackend);
        Assert.That(() => vae.Decode(Latents(6, 5)), Throws.TypeOf<InsufficientMemoryException>()
            .With.Message.Contains("4-element exact tiles need").And.Message.Contains("more than the 2048 bytes available"));
    }

    [Test]
    public void AnOutputOverTheBudgetIsRefusedInEveryModeGivingBothFigures()
    {
        // The 12x10 float output of a 6x5 latent is 1440 bytes.
        using var vae = Create(new VaeOptions { MemoryLimitBytes = 1000 });
        foreach (var mode in new[] { TilingMode.Auto, TilingMode.None, TilingMode.Exact, TilingMode.Blend })
        {
            Assert.That(() => vae.Decode(Latents(6, 5), new DecodeOptions { Tiling = mode }), Throws.TypeOf<InsufficientMemoryException>()
                .With.Message.Contains("the output alone needs").And.Message.Contains("MiB are available"), mode.ToString());
        }
    }

    [Test]
    public void OnTheCpuAutoPicksExactTilingThroughTheStoreWhenUntiledDoesNotFit()
    {
        // Untiled, several 120 KiB tensors are live. Exact tiling keeps the activations in a temporary file, so only
        // the tiles, their host staging, the full-width row bands the store is read and written through (a few rows
        // of the widest layer) and 6 KiB of output count.
        using var vae = Create(new VaeOptions { MemoryLimitBytes = 240 * 1024 });
        var latents = Latents(12, 10);
        var (mode, tile) = vae.PlanAuto(latents, encode: false);
        Assert.That(mode, Is.EqualTo(TilingMode.Exact), "Auto tiles this call on the CPU");
        Assert.That(() => vae.Decode(latents, new DecodeOptions { Tiling = TilingMode.None }),
            Throws.TypeOf<InsufficientMemoryException>().With.Message.Contains("untiled").And.Message.Contains("host memory free now"));
        Assert.That(() => vae.Decode(latents, new DecodeOptions { Tiling = TilingMode.Exact, TileSize = 256 }),
            Throws.TypeOf<InsufficientMemoryException>().With.Message.Contains("exact-tiled with tile 256"));
        // Auto runs within the limit and gives the untiled result.
        using var tiled = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        using var unlimited = Create(new VaeOptions());
        using var whole = unlimited.Decode(latents, new DecodeOptions { Tiling = TilingMode.None, Output = DecodeOutput.FloatTensor });
        NumericAssert.Close(tiled.FloatTensor.Data, whole.FloatTensor.Data, whole.FloatTensor.Shape, 1e-4, 0, $"Auto (exact, tile {tile}) on the CPU");
    }

    [Test]
    public void WithoutALimitTheCpuPlansFromTheHostMemoryFreeNow()
    {
        using var vae = Create(new VaeOptions());
        Assert.That(vae.PlanAuto(Latents(12, 10), encode: false).Mode, Is.EqualTo(TilingMode.None));
        long free = NativeVae.Core.BackendCapabilities.HostFreeBytes;
        Assert.That(free, Is.GreaterThan(0).And.LessThanOrEqualTo(NativeVae.Core.BackendCapabilities.HostMemoryBytes));
    }
}
