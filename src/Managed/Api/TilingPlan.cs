using NativeVae.Backends;
using NativeVae.Models;
using NativeVae.Core;

namespace NativeVae.Api;

/// <summary>How one call splits its work: the mode (never <see cref="TilingMode.Auto"/>) and the tile, when given.</summary>
internal readonly record struct TilingPlan(TilingMode Mode, int? Tile)
{
    /// <summary>Share of the device's memory that <see cref="TilingMode.Auto"/> plans to use.</summary>
    private const double UsableMemoryFraction = 0.8;

    /// <summary>Exact tiling's default output tile edge, in elements of each layer.</summary>
    public const int DefaultExactTile = 256;

    private const int SmallestExactTile = 4;

    /// <summary>The caller's choice, with <see cref="TilingMode.Auto"/> resolved by <see cref="Auto"/>.</summary>
    /// <exception cref="ArgumentException">the tile size is not positive or the mode is unknown.</exception>
    public static TilingPlan Choose(IVaeModel model, TensorShape input, bool encode, TilingMode mode, int? tile, long? memoryLimit)
    {
        if (tile is <= 0) throw new ArgumentException($"tile size {tile} must be positive");
        return mode switch
        {
            TilingMode.Auto => Auto(model, input, encode, memoryLimit),
            TilingMode.None or TilingMode.Blend or TilingMode.Exact => new TilingPlan(mode, tile),
            _ => throw new ArgumentException($"tiling mode {(int)mode} is not one of None, Blend, Exact, Auto"),
        };
    }

    /// <summary>
    /// Untiled when the dry-run peak of activations fits the budget, else exact tiling with the largest power-of-two
    /// tile whose worst convolution step (plus the attention) fits.
    /// </summary>
    /// <exception cref="InsufficientMemoryException">not even the smallest tile fits.</exception>
    public static TilingPlan Auto(IVaeModel model, TensorShape input, bool encode, long? memoryLimit)
    {
        var backend = model.Backend;
        long budget = memoryLimit
            ?? (long)(backend.Capabilities.MemoryCapacityBytes * UsableMemoryFraction) - backend.Memory.LiveBytes;
        using var dry = new DryRunBackend { FusesNormIntoConv = backend.Capabilities.FusesNormIntoConv };
        using (var x = dry.Allocate(input))
        using (encode ? model.Encode(dry, x) : model.Decode(dry, x)) { }
        if (dry.PeakBytes <= budget) return new TilingPlan(TilingMode.None, null);
        for (int tile = DefaultExactTile; tile >= SmallestExactTile; tile /= 2)
        {
            long need = Math.Max(dry.MaxAttentionBytes, dry.Convolutions.Max(c => c.TileBytes(tile)));
            if (need <= budget) return new TilingPlan(TilingMode.Exact, tile);
        }
        throw new InsufficientMemoryException(
            $"{input}: even {SmallestExactTile}-element tiles need more than the {budget} bytes available; raise MemoryLimitBytes");
    }

    /// <summary>Names calls alike for the backend's memory plan (<see cref="IBackend.BeginCall"/>).</summary>
    public string CallKey(bool encode, TensorShape input) => $"{(encode ? "encode" : "decode")} {input} {Mode} {Tile}";
}
