using NativeVae.Models.AutoencoderKl;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae.Tests.Api;

/// <summary>
/// The public API's parameter semantics, outputs and errors, on the small AutoencoderKL config with seeded weights
/// (ILGPU CPU accelerator; tiny images).
/// </summary>
public class VaeApiTests
{
    /// <summary>The exact tile floor for these tiny images (the library's, 16, would be their whole size).</summary>
    private const int TinyImageTile = 1;

    private const ulong Seed = SeededWeights.DefaultSeed;
    private const double Tolerance = 1e-5;

    /// <summary>Small config with 16 latent channels so that FLUX-style packed latents apply.</summary>
    private static readonly AutoencoderKlConfig Small16 = AutoencoderKlConfig.Small with { LatentChannels = 16 };

    private static Vae Create(AutoencoderKlConfig config, string backend = "ilgpu-cpu", long? memoryLimit = null)
    {
        var ops = TestBackends.Get(backend);
        var model = new AutoencoderKlModel(ops, config, InMemoryWeights.Seeded(Seed, AutoencoderKlParameters.Enumerate(config)));
        return new Vae(model, new VaeOptions { MemoryLimitBytes = memoryLimit }, config.ScalingFactor, config.ShiftFactor, ownsBackend: false)
            { SmallestExactTile = TinyImageTile };
    }

    private static HostTensor<float> RandomImages(int n, int h, int w, string stream = "api.image") =>
        new(TensorShape.Nchw(n, 3, h, w), SeededWeights.Uniform(Seed, stream, n * 3 * h * w));

    private static HostTensor<float> RandomLatents(int n, int c, int h, int w) =>
        new(TensorShape.Nchw(n, c, h, w), SeededWeights.Uniform(Seed, "api.latent", n * c * h * w).Select(v => 2 * v).ToArray());

    [Test]
    public void EncodeAppliesShiftThenScaleToTheMean()
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        var images = RandomImages(1, 12, 10);
        var raw = vae.Encode(images, new EncodeOptions { Tiling = TilingMode.None });
        Assert.That(raw.Shape, Is.EqualTo(TensorShape.Nchw(1, 4, 6, 5)));
        var scaled = vae.Encode(images, new EncodeOptions { Tiling = TilingMode.None, ScalingFactor = 0.5f, ShiftFactor = 0.25f });
        for (int i = 0; i < raw.Data.Length; i++)
            Assert.That(scaled.Data[i], Is.EqualTo((raw.Data[i] - 0.25f) * 0.5f).Within(Tolerance));
    }

    [Test]
    public void SampleIsSeededAndDiffersFromTheMode()
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        var images = RandomImages(1, 8, 8);
        var mode = vae.Encode(images);
        var a = vae.Encode(images, new EncodeOptions { SampleSeed = 1 });
        var b = vae.Encode(images, new EncodeOptions { SampleSeed = 1 });
        Assert.That(a.Data, Is.EqualTo(b.Data));
        Assert.That(a.Data, Is.Not.EqualTo(mode.Data));
    }

    [Test]
    public void BatchOfTwoEqualsTwoSingleCalls()
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        var batch = RandomImages(2, 10, 6);
        var latents = vae.Encode(batch);
        int per = batch.Data.Length / 2, latentPer = latents.Data.Length / 2;
        for (int n = 0; n < 2; n++)
        {
            var single = new HostTensor<float>(TensorShape.Nchw(1, 3, 10, 6), batch.Data.AsSpan(n * per, per).ToArray());
            var one = vae.Encode(single);
            NumericAssert.Close(latents.Data.AsSpan(n * latentPer, latentPer), one.Data, one.Shape, Tolerance, 0, $"batch item {n}");
        }
        using var decoded = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        Assert.That(decoded.FloatTensor!.Shape, Is.EqualTo(TensorShape.Nchw(2, 3, 10, 6)));
    }

    [Test]
    public void DecodeDividesByScaleThenAddsShift()
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        var latents = RandomLatents(1, 4, 3, 5);
        var manual = new HostTensor<float>(latents.Shape, latents.Data.Select(v => v / 0.5f + 0.25f).ToArray());
        using var expected = vae.Decode(manual, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        using var actual = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, ScalingFactor = 0.5f, ShiftFactor = 0.25f });
        NumericAssert.Close(actual.FloatTensor!.Data, expected.FloatTensor!.Data, expected.FloatTensor.Shape, Tolerance, 0, "scaled decode");
        Assert.That(latents.Data[0], Is.EqualTo(RandomLatents(1, 4, 3, 5).Data[0]), "the caller's latents are not modified");
    }

    [Test]
    public void OutputsAgreeWithEachOther()
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        var latents = RandomLatents(1, 4, 4, 3);
        using var floats = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        using var bytes = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.UInt8Tensor });
        using var images = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.Images });
        using var png = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.EncodedImages, ImageFormat = ImageFormat.Png });

        var f = floats.FloatTensor!;
        var u = bytes.UInt8Tensor!;
        Assert.That(u.Shape, Is.EqualTo(new TensorShape(1, 8, 6, 3)), "NHWC");
        for (int y = 0; y < 8; y++)
        for (int x = 0; x < 6; x++)
        for (int c = 0; c < 3; c++)
        {
            double v = Math.Clamp(f.Data[(c * 8 + y) * 6 + x] * 0.5 + 0.5, 0, 1) * 255;
            Assert.That(u.Data[(y * 6 + x) * 3 + c], Is.EqualTo(Math.Round(v, MidpointRounding.ToEven)).Within(1), $"pixel ({y},{x},{c})");
            Assert.That(images.Images![0][x, y], Is.EqualTo(new Rgb24(u.Data[(y * 6 + x) * 3], u.Data[(y * 6 + x) * 3 + 1], u.Data[(y * 6 + x) * 3 + 2])));
        }
        using var decodedPng = Image.Load<Rgb24>(png.EncodedImages![0]);
        Assert.That(decodedPng[5, 7], Is.EqualTo(images.Images![0][5, 7]), "PNG is lossless");
    }

    [Test]
    public void PackedFluxLatentsNeedHeightAndWidthAndMatchUnpacked()
    {
        using var vae = Create(Small16);
        var latents = RandomLatents(1, 16, 4, 6);   // a 4x6 latent is an 8x12 image with f = 2... packed by 2x2 patches
        var packed = NativeVae.Api.FluxLatentPacking.Pack(latents);
        Assert.That(() => vae.Decode(packed), Throws.ArgumentException.With.Message.EqualTo("`height` and `width` required for packed latents."));
        // h = 2 * (height // (2 f)), f = 2 as diffusers' vae_scale_factor for this 2-level VAE: 4 latent rows <- height
        // 8..11, 6 columns <- width 12..15 (a published VAE, f = 8, divides by 16)
        using var fromPacked = vae.Decode(packed, new DecodeOptions { Output = DecodeOutput.FloatTensor, Height = 11, Width = 12 });
        using var fromPlain = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        Assert.That(fromPacked.FloatTensor!.Data, Is.EqualTo(fromPlain.FloatTensor!.Data));
    }

    [Test]
    public void BadInputsGetClearErrors()
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        Assert.That(() => vae.Decode(RandomLatents(1, 3, 2, 2)), Throws.ArgumentException.With.Message.Contains("[N, 4, h, w]"));
        Assert.That(() => vae.Encode(new HostTensor<float>(TensorShape.Nchw(1, 4, 8, 8))), Throws.ArgumentException.With.Message.Contains("[N, 3, H, W]"));
        Assert.That(() => vae.Decode(RandomLatents(1, 4, 2, 2), new DecodeOptions { ScalingFactor = 0 }),
            Throws.ArgumentException.With.Message.Contains("scaling_factor"));
        Assert.That(() => DecodeOptions.FromRemote(outputType: "mp4"), Throws.TypeOf<NotSupportedException>());
        Assert.That(() => DecodeOptions.FromRemote(imageFormat: "gif"), Throws.ArgumentException.With.Message.Contains("image_format"));
        vae.Dispose();
        Assert.That(() => vae.Encode(RandomImages(1, 8, 8)), Throws.TypeOf<ObjectDisposedException>());
    }

    [Test]
    public void RemoteParametersMapLikeDiffusers()
    {
        Assert.That(DecodeOptions.FromRemote().Output, Is.EqualTo(DecodeOutput.Images));
        Assert.That(DecodeOptions.FromRemote("pt", "pt").Output, Is.EqualTo(DecodeOutput.FloatTensor));
        Assert.That(DecodeOptions.FromRemote("pt", "pt", partialPostprocess: true).Output, Is.EqualTo(DecodeOutput.UInt8Tensor));
        Assert.That(DecodeOptions.FromRemote("pt", "pil", partialPostprocess: true).Output, Is.EqualTo(DecodeOutput.Images));
        Assert.That(DecodeOptions.FromRemote(imageFormat: "png").ImageFormat, Is.EqualTo(ImageFormat.Png));
    }

    [TestCase(13, 19, 4)]
    [TestCase(16, 10, 3)]
    public void ExactTilingEqualsUntiled(int height, int width, int tile)
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        var images = RandomImages(1, height, width);
        var whole = vae.Encode(images, new EncodeOptions { Tiling = TilingMode.None });
        var tiled = vae.Encode(images, new EncodeOptions { Tiling = TilingMode.Exact, TileSize = tile });
        NumericAssert.Close(tiled.Data, whole.Data, whole.Shape, 1e-4, 0, "exact-tiled encode");

        var latents = RandomLatents(1, 4, height / 2, width / 2);
        using var wholeImage = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.None });
        using var tiledImage = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Exact, TileSize = tile });
        NumericAssert.Close(tiledImage.FloatTensor!.Data, wholeImage.FloatTensor!.Data, wholeImage.FloatTensor.Shape, 1e-4, 0, "exact-tiled decode");
    }

    [Test]
    public void AutoTilingTilesOnlyWhenTheEstimateExceedsTheLimit()
    {
        var latents = RandomLatents(1, 4, 6, 5);
        using var roomy = Create(AutoencoderKlConfig.Small);
        using var tight = Create(AutoencoderKlConfig.Small, memoryLimit: 64 * 1024);
        Assert.That(roomy.PlanAuto(latents, encode: false).Mode, Is.EqualTo(TilingMode.None));
        // 64 channels at 12x10 need more than 64 KiB of live activations untiled; an 8x8 conv tile with its halo fits.
        Assert.That(tight.PlanAuto(latents, encode: false), Is.EqualTo((TilingMode.Exact, (int?)8)));
        using var a = roomy.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        using var b = tight.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor });
        NumericAssert.Close(b.FloatTensor!.Data, a.FloatTensor!.Data, a.FloatTensor.Shape, 1e-4, 0, "auto-tiled decode");
    }

    [Test]
    public void ProgressAndCancellation()
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        var reports = new List<VaeProgress>();
        var progress = new SynchronousProgress<VaeProgress>(reports.Add);
        vae.Decode(RandomLatents(1, 4, 3, 3), new DecodeOptions { Output = DecodeOutput.FloatTensor, Progress = progress }).Dispose();
        Assert.That(reports, Is.Not.Empty);
        Assert.That(reports[^1].Done, Is.EqualTo(reports[^1].Total));

        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.That(async () => await vae.DecodeAsync(RandomLatents(1, 4, 3, 3), null, cancelled.Token),
            Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    public void ParallelCallersGetTheSameResults()
    {
        using var vae = Create(AutoencoderKlConfig.Small);
        var images = RandomImages(1, 8, 8);
        var expected = vae.Encode(images);
        var results = Enumerable.Range(0, 4).AsParallel().Select(_ => vae.Encode(images)).ToList();
        foreach (var r in results) Assert.That(r.Data, Is.EqualTo(expected.Data));
    }
}
