using static TorchSharp.torch;

namespace NativeVae.Oracle.Tiling;

/// <summary>
/// diffusers' blend tiling (<c>AutoencoderKL.tiled_encode</c> / <c>tiled_decode</c>, models/autoencoders/autoencoder_kl.py)
/// in libtorch ops, for any model given as a per-tile callback (the project applies it to every family, TAEF2
/// included, although diffusers' AutoencoderTiny tiles differently):
/// <list type="number">
/// <item>input tiles <c>x[:, :, i:i+inputTile, j:j+inputTile]</c> (cropped at the far edges), with i and j
/// stepping by <c>int(inputTile * 0.75)</c>, each run separately;</item>
/// <item>in row-major order each output tile is blended <b>in place</b>, first with the (already blended) tile
/// above, then with the (already blended) tile to its left, over <c>int(outputTile * 0.25)</c> rows/columns
/// clipped to both tiles' sizes;</item>
/// <item>each tile's top-left <c>outputTile - blend_extent</c> square is kept and the pieces are concatenated.</item>
/// </list>
/// Blend weights are Python floats (double) applied to fp32 tensors, as in diffusers.
/// </summary>
internal static class BlendTilingOracle
{
    /// <summary>diffusers' <c>tile_overlap_factor</c>.</summary>
    public const double OverlapFactor = 0.25;

    private const int HeightDim = 2;
    private const int WidthDim = 3;

    /// <param name="input"><c>[N, C, H, W]</c>.</param>
    /// <param name="inputTile">Tile edge in input elements (sample_size to encode, sample_size / f to decode).</param>
    /// <param name="outputTile">Tile edge the model makes of a full input tile (sample_size / f, or sample_size).</param>
    /// <param name="run">The model on one tile <c>[N, C, h, w]</c> -> <c>[N, C', h', w']</c>.</param>
    public static Tensor Run(Tensor input, int inputTile, int outputTile, Func<Tensor, Tensor> run)
    {
        int stride = (int)(inputTile * (1 - OverlapFactor));
        int blendExtent = (int)(outputTile * OverlapFactor);
        int rowLimit = outputTile - blendExtent;
        if (stride <= 0) throw new ArgumentException($"input tile {inputTile} gives a stride of {stride}");

        long height = input.shape[HeightDim], width = input.shape[WidthDim];
        var tiles = new List<List<Tensor>>();
        for (long i = 0; i < height; i += stride)
        {
            var row = new List<Tensor>();
            for (long j = 0; j < width; j += stride)
            {
                var tile = input.narrow(HeightDim, i, Math.Min(inputTile, height - i))
                                .narrow(WidthDim, j, Math.Min(inputTile, width - j));
                // A tile of its own: it is blended in place below and must not alias the model's buffers.
                row.Add(run(tile.contiguous()).clone());
            }
            tiles.Add(row);
        }

        var rows = new List<Tensor>();
        for (int i = 0; i < tiles.Count; i++)
        {
            var kept = new List<Tensor>();
            for (int j = 0; j < tiles[i].Count; j++)
            {
                var tile = tiles[i][j];
                if (i > 0) Blend(tiles[i - 1][j], tile, blendExtent, HeightDim);
                if (j > 0) Blend(tiles[i][j - 1], tile, blendExtent, WidthDim);
                kept.Add(tile.narrow(HeightDim, 0, Math.Min(rowLimit, tile.shape[HeightDim]))
                             .narrow(WidthDim, 0, Math.Min(rowLimit, tile.shape[WidthDim])));
            }
            rows.Add(cat(kept, WidthDim));
        }
        return cat(rows, HeightDim);
    }

    /// <summary>
    /// diffusers' blend_v (dim = H) / blend_h (dim = W), in place on <paramref name="b"/>: its first rows fade in
    /// from <paramref name="a"/>'s last rows, weight y / extent on b.
    /// </summary>
    private static void Blend(Tensor a, Tensor b, int blendExtent, int dim)
    {
        long extent = Math.Min(Math.Min(a.shape[dim], b.shape[dim]), blendExtent);
        long aLength = a.shape[dim];
        for (long y = 0; y < extent; y++)
        {
            double weight = (double)y / extent;
            var bSlice = b.narrow(dim, y, 1);
            using var blended = a.narrow(dim, aLength - extent + y, 1) * (1 - weight) + bSlice * weight;
            bSlice.copy_(blended);
        }
    }
}
