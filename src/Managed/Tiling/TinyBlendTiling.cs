namespace NativeVae.Tiling;

/// <summary>
/// diffusers' tiled encode/decode for the TAESD family (<c>AutoencoderTiny._tiled_encode</c> / <c>_tiled_decode</c>):
/// tiles of <c>inputTile</c> start every <c>inputTile - int(inputTile * overlap)</c> inputs, and in row-major order
/// each tile's output is blended straight into a zeroed output as <c>m * tile + (1 - m) * out</c>. The mask m is a
/// row ramp times a column ramp, each <c>min(k / (blend - 1), 1)</c> over the tile's first <c>blend</c> output
/// rows/columns (the overlap in output elements) and 1 for the first row/column of tiles. Every element a ramp
/// weighs below 1 was already written by the tile above or to the left, so the weights covering it sum to 1 and no
/// zero of the initial output shows through.
/// </summary>
internal static class TinyBlendTiling
{
    /// <summary>diffusers' AutoencoderTiny <c>tile_overlap_factor</c>.</summary>
    public const float DiffusersOverlapFactor = 0.125f;

    /// <summary>A ramp k / (blend - 1) needs at least two elements: diffusers' mask divides by zero at one.</summary>
    private const int SmallestRamp = 2;

    private const string Algorithm = "TAESD-family";

    /// <summary>
    /// Tiles T whose overlap int(T / 8) and traverse T - int(T / 8) are whole latent rows, so that each tile's input
    /// starts on a latent boundary and its output lands where diffusers slices it: T a multiple of 8 x the factor (64).
    /// Encoding also needs the ramp, T / 64 latent rows, to be at least 2 long (T >= 128); decoding ramps over
    /// T / 8 pixels and takes any multiple of 64.
    /// </summary>
    /// <param name="factor">The model's downsampling factor.</param>
    /// <param name="encode">True for encode, whose ramp is in latent rows.</param>
    public static BlendTileRule Rule(int factor, bool encode)
    {
        int unit = (int)(factor / DiffusersOverlapFactor);
        string reason = $"{(int)(1 / DiffusersOverlapFactor)} x the downsampling factor {factor}";
        return encode
            ? new(Algorithm, unit, SmallestRamp * unit, $"{reason}; encoding ramps over tile/{unit} latent rows and needs {SmallestRamp}")
            : new(Algorithm, unit, unit, reason);
    }

    /// <summary>
    /// True when one tile covers the input (each side within one traverse): the only tile then has weight 1 over a
    /// zeroed output, so the result equals the untiled run.
    /// </summary>
    public static bool IsSingleTile(int height, int width, int inputTile, float overlapFactor = DiffusersOverlapFactor)
    {
        int traverse = inputTile - (int)(inputTile * overlapFactor);
        return height <= traverse && width <= traverse;
    }

    /// <param name="input">[N, C, H, W].</param>
    /// <param name="inputTile">Tile edge in input elements (pixels for encode, latents for decode).</param>
    /// <param name="outputTile">The same tile in output elements (latents for encode, pixels for decode).</param>
    /// <param name="run">Runs the model on one tile [N, C, h, w] and returns its output [N, C', h', w'].</param>
    /// <param name="progress">Reports (tiles done, tile count).</param>
    /// <param name="cancellation">Checked before each tile.</param>
    /// <param name="overlapFactor">Share of the tile that overlaps the next one.</param>
    /// <returns>[N, C', ceil(H * outputTile / inputTile), ceil(W * outputTile / inputTile)].</returns>
    /// <exception cref="ArgumentException">the input is not [N, C, H, W], or the tiles make no progress or no ramp.</exception>
    public static HostTensor<float> Run(HostTensor<float> input, int inputTile, int outputTile,
        Func<HostTensor<float>, HostTensor<float>> run, IProgress<(int Done, int Total)>? progress = null,
        CancellationToken cancellation = default, float overlapFactor = DiffusersOverlapFactor)
    {
        if (input.Shape.Rank != 4) throw new ArgumentException($"tiling input must be [N, C, H, W], got {input.Shape}", nameof(input));
        if (inputTile <= 0 || outputTile <= 0)
            throw new ArgumentException($"tile sizes {inputTile}/{outputTile} must be positive", nameof(inputTile));
        int blend = (int)(inputTile * overlapFactor);
        int traverse = inputTile - blend;
        int ramp = ToOutput(blend, inputTile, outputTile);
        if (blend <= 0 || ramp < SmallestRamp)
            throw new ArgumentException(
                $"tile {inputTile} with overlap {overlapFactor} blends over {ramp} output element(s); the ramp needs at least {SmallestRamp}",
                nameof(inputTile));

        int height = input.Shape.H, width = input.Shape.W;
        var rowStarts = BlendTiling.Starts(height, traverse);
        var colStarts = BlendTiling.Starts(width, traverse);
        int total = rowStarts.Count * colStarts.Count, done = 0;
        HostTensor<float>? output = null;
        for (int i = 0; i < rowStarts.Count; i++)
        {
            for (int j = 0; j < colStarts.Count; j++)
            {
                cancellation.ThrowIfCancellationRequested();
                var tile = run(BlendTiling.Crop(input, rowStarts[i], colStarts[j], inputTile, inputTile));
                // The output takes the tiles' channels (diffusers' encode hard-codes 4, wrong for TAEF1/TAEF2) and
                // rounds up like the untiled TAESD encoder, where diffusers' floor would not fit the last tile.
                output ??= new HostTensor<float>(TensorShape.Nchw(tile.Shape.N, tile.Shape.C,
                    CeilToOutput(height, inputTile, outputTile), CeilToOutput(width, inputTile, outputTile)));
                BlendInto(output, tile, ToOutput(rowStarts[i], inputTile, outputTile), ToOutput(colStarts[j], inputTile, outputTile),
                    Ramp(tile.Shape.H, ramp, flat: i == 0), Ramp(tile.Shape.W, ramp, flat: j == 0));
                progress?.Report((++done, total));
            }
        }
        return output!;
    }

    /// <summary>Input index -> output index, floored as diffusers' <c>i // sf</c> (exact for valid tiles).</summary>
    private static int ToOutput(int index, int inputTile, int outputTile) => (int)((long)index * outputTile / inputTile);

    private static int CeilToOutput(int length, int inputTile, int outputTile) =>
        (int)(((long)length * outputTile + inputTile - 1) / inputTile);

    /// <summary>One axis of diffusers' blend mask: min(k / (ramp - 1), 1), or all 1 for the first tile on that axis.</summary>
    internal static float[] Ramp(int length, int ramp, bool flat)
    {
        var weights = new float[length];
        for (int k = 0; k < length; k++) weights[k] = flat ? 1f : Math.Min(1f, (float)k / (ramp - 1));
        return weights;
    }

    /// <summary>out[top + y, left + x] = m * tile + (1 - m) * out with m = rowWeights[y] * colWeights[x], clipped at the output's edge.</summary>
    private static void BlendInto(HostTensor<float> output, HostTensor<float> tile, int top, int left, float[] rowWeights, float[] colWeights)
    {
        var o = output.Shape;
        var t = tile.Shape;
        int rows = Math.Min(t.H, o.H - top), cols = Math.Min(t.W, o.W - left);
        for (int plane = 0; plane < o.N * o.C; plane++)
        {
            for (int y = 0; y < rows; y++)
            {
                long src = ((long)plane * t.H + y) * t.W;
                long dst = ((long)plane * o.H + top + y) * o.W + left;
                for (int x = 0; x < cols; x++)
                {
                    float m = rowWeights[y] * colWeights[x];
                    output.Data[dst + x] = m * tile.Data[src + x] + (1 - m) * output.Data[dst + x];
                }
            }
        }
    }
}
