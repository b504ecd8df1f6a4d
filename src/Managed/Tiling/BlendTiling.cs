namespace NativeVae.Tiling;

/// <summary>
/// diffusers' tiled encode/decode (<c>AutoencoderKL.tiled_encode</c> / <c>tiled_decode</c>), reproduced exactly:
/// the input is cut into tiles of <c>inputTile</c> starting every <c>int(inputTile * (1 - overlap))</c>, each tile
/// (cropped at the image edge) is run separately to an output tile, then in row-major order each output tile is
/// blended <b>in place</b> with the already-blended tile above (<c>blend_v</c>) and then the one to its left
/// (<c>blend_h</c>) over <c>int(outputTile * overlap)</c> rows/columns, and its top-left
/// <c>outputTile - blend_extent</c> square is kept. The output therefore equals diffusers' tiled output, seams
/// and all; use exact tiling for seam-free results.
/// </summary>
internal static class BlendTiling
{
    /// <summary>diffusers' <c>tile_overlap_factor</c>.</summary>
    public const float DiffusersOverlapFactor = 0.25f;

    /// <summary>
    /// At most how many times the untiled work tiles overlapping by <paramref name="overlapFactor"/> do: each pixel
    /// lies in up to 1/(1-overlap)^2 tiles (this blend and the TAESD family's alike).
    /// </summary>
    public static double MaxOverlapWork(float overlapFactor) => 1.0 / ((1 - overlapFactor) * (1 - overlapFactor));

    /// <summary>
    /// Tiles that keep the pixel stride equal to the kept latent rows times the factor. With T = factor * L, encode
    /// strides int(0.75 T) pixels and keeps L - int(0.25 L) latent rows; decode strides int(0.75 L) latent rows and
    /// keeps T - int(0.25 T) pixels. Both agree (and the assembled output is the input's size x or / factor) exactly
    /// when 0.25 L is whole, that is when T is a multiple of 4 x the factor (32 for every published VAE); any other
    /// tile drifts by a fraction of a latent per tile (tile 100 at 512 pixels: a 62-row latent, not 64).
    /// </summary>
    /// <param name="factor">The model's downsampling factor.</param>
    public static BlendTileRule Rule(int factor) =>
        new("AutoencoderKL", (int)(factor / DiffusersOverlapFactor), (int)(factor / DiffusersOverlapFactor),
            $"{(int)(1 / DiffusersOverlapFactor)} x the downsampling factor {factor}");

    /// <summary>diffusers' AutoencoderKL runs an input that fits one tile untiled (tiled_encode is for larger ones).</summary>
    public static bool IsSingleTile(int height, int width, int inputTile) => height <= inputTile && width <= inputTile;

    /// <param name="input">[N, C, H, W].</param>
    /// <param name="inputTile">Tile edge in input elements (sample_size for encode, sample_size / 8 for decode).</param>
    /// <param name="outputTile">Tile edge in output elements (sample_size / 8 for encode, sample_size for decode).</param>
    /// <param name="run">Runs the model on one tile [N, C, h, w] and returns its output [N, C', h', w'].</param>
    /// <param name="progress">Reports (tiles done, tile count).</param>
    public static HostTensor<float> Run(HostTensor<float> input, int inputTile, int outputTile,
        Func<HostTensor<float>, HostTensor<float>> run, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellation = default, float overlapFactor = DiffusersOverlapFactor)
    {
        if (input.Shape.Rank != 4) throw new ArgumentException($"tiling input must be [N, C, H, W], got {input.Shape}");
        if (inputTile <= 0 || outputTile <= 0) throw new ArgumentException($"tile sizes {inputTile}/{outputTile} must be positive");
        int stride = (int)(inputTile * (1 - overlapFactor));
        int blendExtent = (int)(outputTile * overlapFactor);
        int rowLimit = outputTile - blendExtent;
        if (stride <= 0) throw new ArgumentException($"tile {inputTile} with overlap {overlapFactor} gives no progress");

        int height = input.Shape.H, width = input.Shape.W;
        var rowStarts = Starts(height, stride);
        var colStarts = Starts(width, stride);
        int total = rowStarts.Count * colStarts.Count;
        var tiles = new HostTensor<float>[rowStarts.Count][];
        int done = 0;
        for (int i = 0; i < rowStarts.Count; i++)
        {
            tiles[i] = new HostTensor<float>[colStarts.Count];
            for (int j = 0; j < colStarts.Count; j++)
            {
                cancellation.ThrowIfCancellationRequested();
                var tile = Crop(input, rowStarts[i], colStarts[j], inputTile, inputTile);
                tiles[i][j] = run(tile);
                progress?.Report((++done, total));
            }
        }

        // Blend in row-major order, in place, so later tiles see blended neighbours (as diffusers does).
        for (int i = 0; i < tiles.Length; i++)
        {
            for (int j = 0; j < tiles[i].Length; j++)
            {
                if (i > 0) BlendVertical(tiles[i - 1][j], tiles[i][j], blendExtent);
                if (j > 0) BlendHorizontal(tiles[i][j - 1], tiles[i][j], blendExtent);
            }
        }
        return Assemble(tiles, rowLimit);
    }

    /// <summary>range(0, size, stride): where tiles start along one axis.</summary>
    internal static List<int> Starts(int size, int stride)
    {
        var starts = new List<int>();
        for (int s = 0; s < size; s += stride) starts.Add(s);
        return starts;
    }

    /// <summary>x[:, :, top:top+h, left:left+w], clipped at the edges like Python slicing.</summary>
    internal static HostTensor<float> Crop(HostTensor<float> x, int top, int left, int h, int w)
    {
        var s = x.Shape;
        int rows = Math.Min(h, s.H - top), cols = Math.Min(w, s.W - left);
        var result = new HostTensor<float>(TensorShape.Nchw(s.N, s.C, rows, cols));
        for (int plane = 0; plane < s.N * s.C; plane++)
        {
            for (int y = 0; y < rows; y++)
            {
                long src = ((long)plane * s.H + top + y) * s.W + left;
                long dst = ((long)plane * rows + y) * cols;
                Array.Copy(x.Data, src, result.Data, dst, cols);
            }
        }
        return result;
    }

    /// <summary>diffusers' blend_v: b's first rows fade in from a's last rows.</summary>
    private static void BlendVertical(HostTensor<float> a, HostTensor<float> b, int extent)
    {
        int blend = Math.Min(Math.Min(a.Shape.H, b.Shape.H), extent);
        int planes = b.Shape.N * b.Shape.C;
        int aH = a.Shape.H, aW = a.Shape.W, bH = b.Shape.H, bW = b.Shape.W;
        for (int plane = 0; plane < planes; plane++)
        {
            for (int y = 0; y < blend; y++)
            {
                float weight = (float)y / blend;
                long aRow = ((long)plane * aH + aH - blend + y) * aW;
                long bRow = ((long)plane * bH + y) * bW;
                for (int x = 0; x < bW; x++)
                    b.Data[bRow + x] = a.Data[aRow + x] * (1 - weight) + b.Data[bRow + x] * weight;
            }
        }
    }

    /// <summary>diffusers' blend_h: b's first columns fade in from a's last columns.</summary>
    private static void BlendHorizontal(HostTensor<float> a, HostTensor<float> b, int extent)
    {
        int blend = Math.Min(Math.Min(a.Shape.W, b.Shape.W), extent);
        int planes = b.Shape.N * b.Shape.C;
        int aH = a.Shape.H, aW = a.Shape.W, bH = b.Shape.H, bW = b.Shape.W;
        for (int plane = 0; plane < planes; plane++)
        {
            for (int y = 0; y < bH; y++)
            {
                long aRow = ((long)plane * aH + y) * aW;
                long bRow = ((long)plane * bH + y) * bW;
                for (int x = 0; x < blend; x++)
                {
                    float weight = (float)x / blend;
                    b.Data[bRow + x] = a.Data[aRow + aW - blend + x] * (1 - weight) + b.Data[bRow + x] * weight;
                }
            }
        }
    }

    /// <summary>Concatenates each tile's top-left rowLimit x rowLimit crop (torch.cat along W, then H).</summary>
    private static HostTensor<float> Assemble(HostTensor<float>[][] tiles, int rowLimit)
    {
        var first = tiles[0][0].Shape;
        int height = tiles.Sum(row => Math.Min(rowLimit, row[0].Shape.H));
        int width = tiles[0].Sum(t => Math.Min(rowLimit, t.Shape.W));
        var result = new HostTensor<float>(TensorShape.Nchw(first.N, first.C, height, width));
        int top = 0;
        foreach (var row in tiles)
        {
            int left = 0;
            int rows = Math.Min(rowLimit, row[0].Shape.H);
            foreach (var tile in row)
            {
                int cols = Math.Min(rowLimit, tile.Shape.W);
                for (int plane = 0; plane < first.N * first.C; plane++)
                {
                    for (int y = 0; y < rows; y++)
                    {
                        long src = ((long)plane * tile.Shape.H + y) * tile.Shape.W;
                        long dst = ((long)plane * height + top + y) * width + left;
                        Array.Copy(tile.Data, src, result.Data, dst, cols);
                    }
                }
                left += cols;
            }
            top += rows;
        }
        return result;
    }
}
