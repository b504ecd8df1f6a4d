using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Tiling;

/// <summary>
/// Sanity checks of <see cref="BlendTilingOracle"/> run before any blend fixture is written. For a model that
/// commutes with cropping (identity, nearest 2x, 2x2 average pool) and tiles whose stride equals the kept
/// width, every blended row mixes two copies of the same value, so the tiled result must equal the untiled one.
/// A wrong stride, blend offset, keep width or concatenation order breaks that.
/// </summary>
internal static class BlendTilingSelfCheck
{
    /// <summary>a*(1-w) + a*w rounds once per product in fp32: a few ulps of values in [-1, 1).</summary>
    private const double Tolerance = 1e-6;

    private sealed record Case(string Name, long[] Shape, int InputTile, int OutputTile, Func<Tensor, Tensor> Model);

    private static readonly Case[] Cases =
    [
        // Small-blend geometry at f = 1: tiles 8, stride 6, blend 2, edge tiles 3 wide and 3 high.
        new("identity 15x21 tile 8", [1, 2, 15, 21], 8, 8, x => x),
        // SD-blend image geometry at f = 1: tiles 16, stride 12, blend 4, edge tiles 12 and 8.
        new("identity 24x20 tile 16", [1, 1, 24, 20], 16, 16, x => x),
        // Decode geometry: latent tile 4 -> 8, stride 3, blend 2, keep 6 = 2 * stride.
        new("nearest 2x 9x7 tile 4", [1, 2, 9, 7], 4, 8, x => F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest)),
        // Encode geometry: tile 8 -> 4, stride 6 -> 3, blend 1, keep 3; odd edges floor like Downsample2D.
        new("avg pool 2 15x21 tile 8", [1, 2, 15, 21], 8, 4, x => F.avg_pool2d(x, 2)),
    ];

    public static void Run(ulong seed)
    {
        using var scope = NewDisposeScope();
        foreach (var c in Cases)
        {
            var x = Torch.Uniform(seed, $"selfcheck/{c.Name}", c.Shape);
            var expected = c.Model(x);
            var tiled = BlendTilingOracle.Run(x, c.InputTile, c.OutputTile, c.Model);
            if (!tiled.shape.SequenceEqual(expected.shape))
                throw new InvalidOperationException(
                    $"blend tiling self-check '{c.Name}': shape [{string.Join(", ", tiled.shape)}], expected [{string.Join(", ", expected.shape)}]");
            double maxError = (tiled - expected).abs().max().item<float>();
            if (maxError > Tolerance)
                throw new InvalidOperationException($"blend tiling self-check '{c.Name}': max error {maxError:E2} > {Tolerance:E0}");
            Console.WriteLine($"blend tiling self-check '{c.Name}': max error {maxError:E2}");
        }
    }
}
