using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.Taesd;
using NativeVae.Tests.Support;
using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// Exact tiling equals the untiled run (max abs 1e-4) for the real SD config (seeded weights) and TAEF2 (real
/// weights), on sizes that are not multiples of the tile, on the fast backends.
/// </summary>
public class ExactTilingParityTests
{
    private const double MaxAbsError = 1e-4;

    /// <summary>A tile that divides none of the sizes below, so every layer has ragged edge tiles.</summary>
    private const int Tile = 11;

    public static IEnumerable<string> Backends() => TestBackends.FastNames;

    [TestCaseSource(nameof(Backends))]
    public void SdEncodeAndDecode(string backend)
    {
        var config = AutoencoderKlConfig.Sd;
        var model = new AutoencoderKlModel(TestBackends.Get(backend), config,
            InMemoryWeights.Seeded(SeededWeights.DefaultSeed, AutoencoderKlParameters.Enumerate(config)));
        using var vae = new Vae(model, new VaeOptions(), null, null, ownsBackend: false) { SmallestExactTile = Tile };
        var images = new HostTensor<float>(TensorShape.Nchw(1, 3, 40, 24), SeededWeights.Uniform(1, "exact.sd.image", 3 * 40 * 24));
        CompareEncode(vae, images);
        var latents = new HostTensor<float>(TensorShape.Nchw(1, 4, 5, 3), SeededWeights.Uniform(1, "exact.sd.latent", 4 * 5 * 3));
        CompareDecode(vae, latents);
    }

    [TestCaseSource(nameof(Backends))]
    public void Taef2EncodeAndDecode(string backend)
    {
        using var loaded = VaeLoader.Open(TestPaths.RequireShared("models/taef2"));
        var model = new TaesdModel(TestBackends.Get(backend), loaded.TinyConfig!, loaded.Weights);
        using var vae = new Vae(model, new VaeOptions(), null, null, ownsBackend: false) { SmallestExactTile = Tile };
        var images = new HostTensor<float>(TensorShape.Nchw(1, 3, 72, 56), SeededWeights.Uniform(2, "exact.taef2.image", 3 * 72 * 56));
        var latent = CompareEncode(vae, images);
        CompareDecode(vae, latent);
    }

    private static HostTensor<float> CompareEncode(Vae vae, HostTensor<float> images)
    {
        var whole = vae.EncodeMoments(images, new EncodeOptions { Tiling = TilingMode.None });
        var tiled = vae.EncodeMoments(images, new EncodeOptions { Tiling = TilingMode.Exact, TileSize = Tile });
        NumericAssert.Close(tiled.Data, whole.Data, whole.Shape, MaxAbsError, 0, $"exact-tiled encode {images.Shape}");
        return whole;
    }

    private static void CompareDecode(Vae vae, HostTensor<float> latents)
    {
        using var whole = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.None });
        using var tiled = vae.Decode(latents, new DecodeOptions { Output = DecodeOutput.FloatTensor, Tiling = TilingMode.Exact, TileSize = Tile });
        var expected = whole.FloatTensor!;
        NumericAssert.Close(tiled.FloatTensor!.Data, expected.Data, expected.Shape, MaxAbsError, 0, $"exact-tiled decode {latents.Shape}");
    }
}
