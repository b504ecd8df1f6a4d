using NativeVae.Tiling;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// The TAESD family's blend tiling (diffusers' AutoencoderTiny _tiled_encode / _tiled_decode): accepted tiles, output
/// sizes, no seams on a constant, weight 1 for the first row and column of tiles, and equality with a reference that
/// computes each output element's final tile weights in closed form.
/// </summary>
public class TinyBlendTilingTests
{
    private const int Factor = FakeTileModels.Factor;
    private const int LargestTile = 256;
    private const float Tolerance = 1e-5f;

    private static readonly BlendTileRule EncodeRule = TinyBlendTiling.Rule(Factor, encode: true);
    private static readonly BlendTileRule DecodeRule = TinyBlendTiling.Rule(Factor, encode: false);

    public static IEnumerable<int> ValidEncodeTiles() => Enumerable.Range(1, LargestTile).Where(EncodeRule.Accepts);

    public static IEnumerable<int> ValidDecodeTiles() => Enumerable.Range(1, LargestTile).Where(DecodeRule.Accepts);

    [Test]
    public void ValidTilesAreMultiplesOf64AndEncodeStartsAt128()
    {
        // The CLI's help states these numbers; this pins the rule to them.
        Assert.That(ValidEncodeTiles(), Is.EqualTo(new[] { 128, 192, 256 }));
        Assert.That(ValidDecodeTiles(), Is.EqualTo(new[] { 64, 128, 192, 256 }));
    }

    [TestCaseSource(nameof(ValidEncodeTiles))]
    public void EncodeWithAValidTileHasTheInputsSizeOverEight(int tile)
    {
        foreach (var (h, w) in BlendTileSizeTests.Images)
        {
            var image = FakeTileModels.Random(3, h, w, "tiny.encode");
            var tiled = TinyBlendTiling.Run(image, tile, tile / Factor, t => FakeTileModels.AveragePool(t));
            BlendTileSizeTests.AssertEqual(tiled, FakeTileModels.AveragePool(image), $"encode {h}x{w}, tile {tile}");
        }
    }

    [TestCaseSource(nameof(ValidDecodeTiles))]
    public void DecodeWithAValidTileHasTheLatentsSizeTimesEight(int tile)
    {
        foreach (var (h, w) in BlendTileSizeTests.Images)
        {
            var latent = FakeTileModels.Random(4, h / Factor, w / Factor, "tiny.decode");
            var tiled = TinyBlendTiling.Run(latent, tile / Factor, tile, t => FakeTileModels.NearestUpsample(t));
            BlendTileSizeTests.AssertEqual(tiled, FakeTileModels.NearestUpsample(latent), $"decode {h / Factor}x{w / Factor}, tile {tile}");
        }
    }

    [TestCase(100, true, "multiples of 64 (8 x the downsampling factor 8; encoding ramps over tile/64 latent rows and needs 2), at least 128, e.g. 128")]
    [TestCase(64, true, "at least 128, e.g. 128")]
    [TestCase(200, true, "e.g. 192 or 256")]
    [TestCase(100, false, "multiples of 64 (8 x the downsampling factor 8), e.g. 64 or 128")]
    [TestCase(32, false, "e.g. 64")]
    public void InvalidTilesAreRefusedNamingTheNearestValidOnes(int tile, bool encode, string rule)
    {
        var r = encode ? EncodeRule : DecodeRule;
        Assert.That(() => r.Require(tile), Throws.ArgumentException.With.Message.Contains($"blend tile {tile}: TAESD-family blend tiles must be ")
            .And.Message.Contains(rule));
    }

    [Test]
    public void TheTaef2ParityFixturesTileIsRefused()
    {
        // tests/fixtures/models/taef2_blend.safetensors was made with AutoencoderKL's algorithm at tile 32.
        const int taef2FixtureTile = 32;
        Assert.That(EncodeRule.Accepts(taef2FixtureTile) || DecodeRule.Accepts(taef2FixtureTile), Is.False);
    }

    [TestCase(true, 128, 296, 232)]
    [TestCase(false, 64, 20, 17)]
    public void AConstantInputGivesAConstantOutput(bool encode, int tile, int h, int w)
    {
        // Any weight left on the zeroed output, or weights that do not sum to 1, would pull the overlaps off 3.5.
        const float value = 3.5f;
        var input = new HostTensor<float>(TensorShape.Nchw(1, 2, h, w));
        Array.Fill(input.Data, value);
        var output = encode
            ? TinyBlendTiling.Run(input, tile, tile / Factor, t => FakeTileModels.AveragePool(t))
            : TinyBlendTiling.Run(input, tile / Factor, tile, t => FakeTileModels.NearestUpsample(t));
        Assert.That(output.Data, Is.All.EqualTo(value).Within(Tolerance));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void TheFirstRowOfTilesHasWeightOneAcrossItsRows(bool transpose)
    {
        // Decode tile 64: 8-latent tiles every 7 latents, so a 7x15 latent is one row of three tiles (0, 7, 14), each
        // a constant 10, 20, 30. The second tile ramps in over pixels 56..63 as k / 7 and is flat down every row.
        const int tile = 64, ramp = 8, traverse = 7 * Factor;
        int h = transpose ? 15 : 7, w = transpose ? 7 : 15;
        int calls = 0;
        var output = TinyBlendTiling.Run(new HostTensor<float>(TensorShape.Nchw(1, 1, h, w)), tile / Factor, tile, t =>
        {
            var result = FakeTileModels.NearestUpsample(t);
            Array.Fill(result.Data, 10f * ++calls);
            return result;
        });
        Assert.That(calls, Is.EqualTo(3));
        int across = transpose ? output.Shape.W : output.Shape.H;
        for (int a = 0; a < across; a++)
        {
            for (int k = 0; k < ramp + 1; k++)
            {
                float m = Math.Min(1f, (float)k / (ramp - 1));
                float expected = m * 20 + (1 - m) * 10;
                int y = transpose ? traverse + k : a, x = transpose ? a : traverse + k;
                Assert.That(output.Data[y * output.Shape.W + x], Is.EqualTo(expected).Within(Tolerance), $"({y}, {x})");
            }
            int y0 = transpose ? 0 : a, x0 = transpose ? a : 0;
            Assert.That(output.Data[y0 * output.Shape.W + x0], Is.EqualTo(10f), "the first tile alone");
        }
    }

    [TestCase(true, 128, 296, 232)]
    [TestCase(false, 64, 20, 17)]
    public void MatchesTheClosedFormReference(bool encode, int tile, int h, int w)
    {
        // Tiles add their own mean, so overlapping tiles disagree and the weights matter; 3x3 tiles overlap.
        var input = FakeTileModels.Random(2, h, w, "tiny.reference");
        Func<HostTensor<float>, HostTensor<float>> run = encode
            ? FakeTileModels.PlusTileMean(t => FakeTileModels.AveragePool(t))
            : FakeTileModels.PlusTileMean(t => FakeTileModels.NearestUpsample(t));
        int inputTile = encode ? tile : tile / Factor, outputTile = encode ? tile / Factor : tile;
        var actual = TinyBlendTiling.Run(input, inputTile, outputTile, run);
        BlendTileSizeTests.AssertEqual(actual, Reference(input, inputTile, outputTile, run), $"{(encode ? "encode" : "decode")} tile {tile}");
    }

    private sealed record PlacedTile(int Row, int Col, int Top, int Left, HostTensor<float> Output);

    /// <summary>
    /// AutoencoderTiny's blend from its definition, by another route: tiles every T - T/8 inputs, each with mask
    /// m = ramp(row) * ramp(col) (1 for the first row / column of tiles, else min(k / (blend - 1), 1) over its output
    /// rows / columns k); applying out = m * tile + (1 - m) * out in order leaves tile t the weight
    /// m_t * prod over later covering tiles (1 - m_l). The weights of each element must sum to 1.
    /// </summary>
    private static HostTensor<float> Reference(HostTensor<float> input, int inputTile, int outputTile,
        Func<HostTensor<float>, HostTensor<float>> run)
    {
        const int overlapDivisor = 8;
        var s = input.Shape;
        int blend = inputTile / overlapDivisor, traverse = inputTile - blend;
        int ramp = blend * outputTile / inputTile;
        var tiles = new List<PlacedTile>();
        for (int row = 0, top = 0; top < s.H; row++, top += traverse)
        {
            for (int col = 0, left = 0; left < s.W; col++, left += traverse)
            {
                int rows = Math.Min(inputTile, s.H - top), cols = Math.Min(inputTile, s.W - left);
                var crop = new HostTensor<float>(TensorShape.Nchw(s.N, s.C, rows, cols));
                for (int c = 0; c < s.C; c++)
                    for (int y = 0; y < rows; y++)
                        for (int x = 0; x < cols; x++)
                            crop.Data[(c * rows + y) * cols + x] = input.Data[(c * s.H + top + y) * s.W + left + x];
                tiles.Add(new PlacedTile(row, col, top * outputTile / inputTile, left * outputTile / inputTile, run(crop)));
            }
        }

        int outH = (s.H * outputTile + inputTile - 1) / inputTile, outW = (s.W * outputTile + inputTile - 1) / inputTile;
        var expected = new HostTensor<float>(TensorShape.Nchw(s.N, s.C, outH, outW));
        double Mask(PlacedTile t, int y, int x) =>
            (t.Row == 0 ? 1 : Math.Min(1, (double)(y - t.Top) / (ramp - 1))) * (t.Col == 0 ? 1 : Math.Min(1, (double)(x - t.Left) / (ramp - 1)));
        for (int y = 0; y < outH; y++)
        {
            for (int x = 0; x < outW; x++)
            {
                var covering = tiles.Where(t => y >= t.Top && y < t.Top + t.Output.Shape.H && x >= t.Left && x < t.Left + t.Output.Shape.W).ToList();
                var weights = covering.Select((t, k) => Mask(t, y, x) * covering.Skip(k + 1).Aggregate(1.0, (p, l) => p * (1 - Mask(l, y, x)))).ToList();
                Assert.That(weights.Sum(), Is.EqualTo(1).Within(1e-9), $"weights of ({y}, {x})");
                for (int c = 0; c < s.C; c++)
                {
                    double value = 0;
                    for (int k = 0; k < covering.Count; k++)
                    {
                        var o = covering[k].Output;
                        value += weights[k] * o.Data[(c * o.Shape.H + y - covering[k].Top) * o.Shape.W + x - covering[k].Left];
                    }
                    expected.Data[(c * outH + y) * outW + x] = (float)value;
                }
            }
        }
        return expected;
    }
}
