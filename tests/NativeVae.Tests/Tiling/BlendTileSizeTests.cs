using NativeVae.Tiling;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// AutoencoderKL blend tiling (diffusers' tiled_encode / tiled_decode): which tiles it accepts, and that every one
/// of those assembles an output of exactly the input's size (x or / 8) with each tile where it belongs, on sides that
/// are multiples of 8 but not of the stride, smaller than a tile, and one latent wide. Fake local models make each
/// tile's output equal the whole input's output at its place, so any misplaced tile shows.
/// </summary>
public class BlendTileSizeTests
{
    private const int Factor = FakeTileModels.Factor;
    private const int LargestTile = 256;
    private const float Tolerance = 1e-5f;

    private static readonly BlendTileRule Rule = BlendTiling.Rule(Factor);

    /// <summary>Pixel sizes: not multiples of any stride, under a tile, and a strip one latent wide.</summary>
    internal static readonly (int H, int W)[] Images = [(40, 72), (104, 56), (200, 136), (8, 264)];

    public static IEnumerable<int> ValidTiles() => Enumerable.Range(1, LargestTile).Where(Rule.Accepts);

    /// <summary>Multiples of 8 (whole latents) that the rule refuses.</summary>
    public static IEnumerable<int> RefusedLatentMultiples() =>
        Enumerable.Range(1, LargestTile / Factor).Select(k => k * Factor).Where(t => !Rule.Accepts(t));

    [Test]
    public void ValidTilesAreTheMultiplesOf32()
    {
        // The CLI's help states 32; this pins the rule to it.
        Assert.That(ValidTiles(), Is.EqualTo(Enumerable.Range(1, LargestTile / 32).Select(k => k * 32)));
    }

    [TestCaseSource(nameof(ValidTiles))]
    public void EncodeWithAValidTileHasTheInputsSizeOverEight(int tile)
    {
        foreach (var (h, w) in Images)
        {
            var image = FakeTileModels.Random(3, h, w, "kl.encode");
            var tiled = BlendTiling.Run(image, tile, tile / Factor, t => FakeTileModels.AveragePool(t));
            AssertEqual(tiled, FakeTileModels.AveragePool(image), $"encode {h}x{w}, tile {tile}");
        }
    }

    [TestCaseSource(nameof(ValidTiles))]
    public void DecodeWithAValidTileHasTheLatentsSizeTimesEight(int tile)
    {
        foreach (var (h, w) in Images)
        {
            var latent = FakeTileModels.Random(4, h / Factor, w / Factor, "kl.decode");
            var tiled = BlendTiling.Run(latent, tile / Factor, tile, t => FakeTileModels.NearestUpsample(t));
            AssertEqual(tiled, FakeTileModels.NearestUpsample(latent), $"decode {h / Factor}x{w / Factor}, tile {tile}");
        }
    }

    [Test]
    public void TheIssuesTile100WouldEncode512PixelsTo62Latents()
    {
        // Why 100 is refused: stride int(0.75 * 100) = 75 pixels, but each tile keeps 12 - int(0.25 * 12) = 9 latents = 72.
        var image = FakeTileModels.Random(1, 512, 512, "kl.issue");
        var tiled = BlendTiling.Run(image, 100, 100 / Factor, t => FakeTileModels.AveragePool(t));
        Assert.That((tiled.Shape.H, tiled.Shape.W), Is.EqualTo((62, 62)));
        Assert.That(Rule.Accepts(100), Is.False);
    }

    [TestCaseSource(nameof(RefusedLatentMultiples))]
    public void EveryRefusedTileOfWholeLatentsGetsSomeSizeWrong(int tile)
    {
        // The rule is tight: a refused tile is one diffusers' arithmetic really breaks, encode or decode.
        bool wrong = Images.Any(size =>
        {
            var image = new HostTensor<float>(TensorShape.Nchw(1, 1, size.H, size.W));
            var latent = new HostTensor<float>(TensorShape.Nchw(1, 1, size.H / Factor, size.W / Factor));
            var encoded = BlendTiling.Run(image, tile, tile / Factor, t => FakeTileModels.AveragePool(t)).Shape;
            // A latent tile under 2 strides int(0.75 * L) = 0: the algorithm cannot run at all.
            if ((int)(tile / Factor * (1 - BlendTiling.DiffusersOverlapFactor)) == 0) return true;
            var decoded = BlendTiling.Run(latent, tile / Factor, tile, t => FakeTileModels.NearestUpsample(t)).Shape;
            return !encoded.Equals(latent.Shape) || !decoded.Equals(image.Shape);
        });
        Assert.That(wrong, Is.True, $"tile {tile} is refused but gives every test image its right size");
    }

    [TestCase(100, "e.g. 96 or 128")]
    [TestCase(33, "e.g. 32 or 64")]
    [TestCase(48, "e.g. 32 or 64")]
    [TestCase(36, "e.g. 32 or 64")]
    [TestCase(20, "e.g. 32")]
    public void InvalidTilesAreRefusedNamingTheNearestValidOnes(int tile, string examples)
    {
        Assert.That(() => Rule.Require(tile), Throws.ArgumentException.With.Message.Contains(
            $"blend tile {tile}: AutoencoderKL blend tiles must be multiples of 32 (4 x the downsampling factor 8), {examples}"));
    }

    [Test]
    public void TheSdParityFixturesTileIsRefused()
    {
        // tests/fixtures/models/sd_blend.safetensors was made at tile 16, where diffusers' output has the wrong size.
        const int sdFixtureTile = 16;
        Assert.That(Rule.Accepts(sdFixtureTile), Is.False);
    }

    internal static void AssertEqual(HostTensor<float> actual, HostTensor<float> expected, string what)
    {
        Assert.That(actual.Shape, Is.EqualTo(expected.Shape), $"shape, {what}");
        for (int i = 0; i < expected.Data.Length; i++)
        {
            if (Math.Abs(actual.Data[i] - expected.Data[i]) > Tolerance)
                Assert.Fail($"{what}: element {i} is {actual.Data[i]}, expected {expected.Data[i]}");
        }
    }
}
