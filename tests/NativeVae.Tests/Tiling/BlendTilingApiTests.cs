using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.QwenImage;
using NativeVae.Tests.Support;
using NativeVae.Models.Taesd;
using NativeVae.Tiling;
using NativeVae.Weights;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// Blend tiling through the public API on real (seeded) models: the output has the input's size, each family's tile
/// rule is enforced before any work, and the TAESD family takes AutoencoderTiny's tiles.
/// </summary>
public class BlendTilingApiTests
{
    private const ulong Seed = SeededWeights.DefaultSeed;
    private const string Backend = TestBackends.CpuName;

    // 40x72 pixels: not a multiple of the small config's 12-pixel stride at tile 16.
    private const int Height = 40, Width = 72;

    private static Vae Small(int? sampleSize = null)
    {
        var config = AutoencoderKlConfig.Small with { SampleSize = sampleSize ?? AutoencoderKlConfig.Small.SampleSize };
        var model = new AutoencoderKlModel(TestBackends.Get(Backend), config, InMemoryWeights.Seeded(Seed, AutoencoderKlParameters.Enumerate(config)));
        return new Vae(model, new VaeOptions(), null, null, ownsBackend: false);
    }

    private static Vae Taesd()
    {
        var config = TaesdConfig.Taesd;
        var model = new TaesdModel(TestBackends.Get(Backend), config, InMemoryWeights.Seeded(Seed, TaesdParameters.Enumerate(config)));
        return new Vae(model, new VaeOptions(), null, null, ownsBackend: false);
    }

    private static HostTensor<float> Image(int h, int w) => FakeTileModels.Random(3, h, w, "api.blend.image");

    [Test]
    public void AutoencoderKlBlendKeepsTheSize()
    {
        // The small config downsamples by 2, so its blend tiles are multiples of 8; 16 tiles both sides.
        const int tile = 16, factor = 2;
        using var vae = Small();
        var latent = vae.Encode(Image(Height, Width), new EncodeOptions { Tiling = TilingMode.Blend, TileSize = tile });
        Assert.That(latent.Shape, Is.EqualTo(TensorShape.Nchw(1, AutoencoderKlConfig.Small.LatentChannels, Height / factor, Width / factor)));
        using var decoded = vae.Decode(latent, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Blend, TileSize = tile });
        Assert.That(decoded.FloatTensor!.Shape, Is.EqualTo(TensorShape.Nchw(1, 3, Height, Width)));
    }

    [Test]
    public void AutoencoderKlRefusesATileItCannotUse()
    {
        const int tile = 12;
        const string message = "blend tile 12: AutoencoderKL blend tiles must be multiples of 8 (4 x the downsampling factor 2), e.g. 8 or 16";
        using var vae = Small();
        var latent = FakeTileModels.Random(AutoencoderKlConfig.Small.LatentChannels, Height / 2, Width / 2, "api.blend.latent");
        Assert.That(() => vae.Encode(Image(Height, Width), new EncodeOptions { Tiling = TilingMode.Blend, TileSize = tile }),
            Throws.ArgumentException.With.Message.Contains(message));
        Assert.That(() => vae.Decode(latent, new DecodeOptions { Tiling = TilingMode.Blend, TileSize = tile }),
            Throws.ArgumentException.With.Message.Contains(message));
    }

    [Test]
    public void AnInvalidSampleSizeIsRefusedAsTheDefaultTile()
    {
        using var vae = Small(sampleSize: 12);
        Assert.That(() => vae.Encode(Image(Height, Width), new EncodeOptions { Tiling = TilingMode.Blend }),
            Throws.ArgumentException.With.Message.Contains("blend tile 12 (the model's sample_size): AutoencoderKL"));
    }

    [Test]
    public void TaesdBlendKeepsTheSize()
    {
        // 200x136 at tile 128 is 2x2 encode tiles; its 25x17 latent at tile 64 is 4x3 decode tiles.
        const int encodeTile = 128, decodeTile = 64, h = 200, w = 136;
        using var vae = Taesd();
        var latent = vae.Encode(Image(h, w), new EncodeOptions { Tiling = TilingMode.Blend, TileSize = encodeTile });
        Assert.That(latent.Shape, Is.EqualTo(TensorShape.Nchw(1, TaesdConfig.Taesd.LatentChannels, h / TaesdModel.Factor, w / TaesdModel.Factor)));
        using var decoded = vae.Decode(latent, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Blend, TileSize = decodeTile });
        Assert.That(decoded.FloatTensor!.Shape, Is.EqualTo(TensorShape.Nchw(1, 3, h, w)));
    }

    [Test]
    public void TaesdBlendIsAutoencoderTinysAlgorithm()
    {
        // Guards the selection: through the API a tiny model blends with TinyBlendTiling, not BlendTiling. Tile 128
        // is valid for both and their overlaps differ (1/8 against 1/4), so the two results differ.
        const int tile = 128, h = 200, w = 136;
        const float tolerance = 1e-4f;
        var backend = TestBackends.Get(Backend);
        var config = TaesdConfig.Taesd;
        var model = new TaesdModel(backend, config, InMemoryWeights.Seeded(Seed, TaesdParameters.Enumerate(config)));
        using var vae = new Vae(model, new VaeOptions(), null, null, ownsBackend: false);
        var image = Image(h, w);
        var viaApi = vae.Encode(image, new EncodeOptions { Tiling = TilingMode.Blend, TileSize = tile });

        HostTensor<float> RunTile(HostTensor<float> t)
        {
            using var x = backend.Upload(t.Data, t.Shape);
            using var y = model.Encode(x);
            var result = new HostTensor<float>(y.Shape);
            backend.Download(y, result.Data);
            return result;
        }
        // The API's [-1, 1] image in TAESD's [0, 1].
        var unit = new HostTensor<float>(image.Shape, image.Data.Select(v => v * 0.5f + 0.5f).ToArray());
        var tiny = TinyBlendTiling.Run(unit, tile, tile / TaesdModel.Factor, RunTile);
        var kl = BlendTiling.Run(unit, tile, tile / TaesdModel.Factor, RunTile);
        Assert.That(viaApi.Shape, Is.EqualTo(tiny.Shape));
        Assert.That(viaApi.Data.Zip(tiny.Data).Max(p => Math.Abs(p.First - p.Second)), Is.LessThan(tolerance), "against TinyBlendTiling");
        Assert.That(viaApi.Data.Zip(kl.Data).Max(p => Math.Abs(p.First - p.Second)), Is.GreaterThan(tolerance), "against BlendTiling");
    }

    [Test]
    public void TaesdRefusesTilesAutoencoderTinyCannotUse()
    {
        using var vae = Taesd();
        Assert.That(() => vae.Encode(Image(Height, Width), new EncodeOptions { Tiling = TilingMode.Blend, TileSize = 64 }),
            Throws.ArgumentException.With.Message.Contains("blend tile 64: TAESD-family blend tiles must be multiples of 64").And.Message.Contains("e.g. 128"));
        var latent = FakeTileModels.Random(TaesdConfig.Taesd.LatentChannels, Height / TaesdModel.Factor, Width / TaesdModel.Factor, "api.blend.latent");
        Assert.That(() => vae.Decode(latent, new DecodeOptions { Tiling = TilingMode.Blend, TileSize = 96 }),
            Throws.ArgumentException.With.Message.Contains("blend tile 96: TAESD-family blend tiles must be multiples of 64 (8 x the downsampling factor 8), e.g. 64 or 128"));
    }

    /// <summary>
    /// The small Qwen-Image decoder's conv_out weights scaled until its raw output passes +-1 (its RMS norms take out any
    /// scale of the latents, so only the last conv sets the output's).
    /// </summary>
    private const float Saturating = 8f;

    /// <summary>
    /// Qwen-Image's decode ends in a clamp, and diffusers' tiled_decode blends the unclamped tiles and clamps the
    /// blend. With latents that saturate the image, the blend equals that order; blending clamped tiles would not.
    /// </summary>
    [Test]
    public void QwenImageBlendsUnclampedTilesAndClampsTheBlend()
    {
        const int tile = 16, factor = 2;
        var config = QwenImageConfig.Small;
        var backend = TestBackends.Get(Backend);
        var parameters = QwenImageParameters.Enumerate(config);
        var values = SeededWeights.Generate(Seed, parameters);
        var weights = new InMemoryWeights("saturating");
        foreach (var (name, shape) in parameters)
            weights.Add(name, shape, name.StartsWith("decoder.conv_out.", StringComparison.Ordinal) ? values[name].Select(v => v * Saturating).ToArray() : values[name]);
        using var model = new QwenImageModel(backend, config, weights);
        using var vae = new Vae(model, new VaeOptions(), null, null, ownsBackend: false) { Family = ModelFamily.QwenImage };
        var latent = FakeTileModels.Random(config.ZDim, Height / factor, Width / factor, "api.blend.qwen");

        using var decoded = vae.Decode(latent, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Blend, TileSize = tile });
        HostTensor<float> Blend(bool clampTiles) => BlendTiling.Run(latent, tile / factor, tile, t =>
        {
            using var x = backend.Upload(t.Data, t.Shape);
            using var y = clampTiles ? model.Decode(backend, x) : model.DecodeUnclamped(backend, x);
            var values = new float[y.ElementCount];
            backend.Download(y, values);
            return new HostTensor<float>(y.Shape, values);
        }, null, CancellationToken.None);
        var unclamped = Blend(clampTiles: false).Data;
        Assert.That(unclamped.Max(Math.Abs), Is.GreaterThan(1f), "the raw blend passes +-1");
        var expected = unclamped.Select(v => Math.Clamp(v, -1f, 1f)).ToArray();
        NumericAssert.Close(decoded.FloatTensor!.Data, expected, decoded.FloatTensor.Shape, 1e-6, 0, "blend of unclamped tiles, clamped");
        var clampedTiles = Blend(clampTiles: true).Data;
        Assert.That(clampedTiles.Zip(expected).Max(p => Math.Abs(p.First - p.Second)), Is.GreaterThan(1e-3),
            "the latents saturate the overlaps: blending clamped tiles gives another image");
    }
}
