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
    /// <param name="figures">the input's dry-run figures, asked for only under <see cref="TilingMode.Auto"/>.</param>
    /// <exception cref="ArgumentException">the tile size is not positive or the mode is unknown.</exception>
    public static TilingPlan Choose(IVaeModel model, TilingMode mode, int? tile, long? memoryLimit, Func<AutoTilingFigures> figures)
    {
        if (tile is <= 0) throw new ArgumentException($"tile size {tile} must be positive");
        return mode switch
        {
            TilingMode.Auto => Auto(model, figures(), memoryLimit),
            TilingMode.None or TilingMode.Blend or TilingMode.Exact => new TilingPlan(mode, tile),
            _ => throw new ArgumentException($"tiling mode {(int)mode} is not one of None, Blend, Exact, Auto"),
        };
    }

    /// <summary>
    /// Untiled when the dry-run peak of activations fits the budget (the caller's limit, else a share of the device's
    /// memory less what it already holds), else exact tiling with the largest power-of-two tile whose worst step fits.
    /// </summary>
    /// <exception cref="InsufficientMemoryException">not even the smallest tile fits.</exception>
    public static TilingPlan Auto(IVaeModel model, AutoTilingFigures figures, long? memoryLimit)
    {
        var backend = model.Backend;
        long budget = memoryLimit
            ?? (long)(backend.Capabilities.MemoryCapacityBytes * UsableMemoryFraction) - backend.Memory.LiveBytes;
        if (figures.UntiledBytes <= budget) return new TilingPlan(TilingMode.None, null);
        foreach (var (tile, bytes) in figures.TiledBytes)
            if (bytes <= budget) return new TilingPlan(TilingMode.Exact, tile);
        throw new InsufficientMemoryException(
            $"{figures.Input}: even {SmallestExactTile}-element tiles need more than the {budget} bytes available; raise MemoryLimitBytes");
    }

    /// <summary>The dry run <see cref="Auto"/> plans from, for one input shape on one model's backend.</summary>
    public static AutoTilingFigures Measure(IVaeModel model, TensorShape input, bool encode)
    {
        using var dry = new DryRunBackend { FusesNormIntoConv = model.Backend.Capabilities.FusesNormIntoConv };
        using (var x = dry.Allocate(input))
        using (encode ? model.Encode(dry, x) : model.Decode(dry, x)) { }
        var tiled = new List<(int Tile, long Bytes)>();
        for (int tile = DefaultExactTile; tile >= SmallestExactTile; tile /= 2)
            tiled.Add((tile, Math.Max(dry.MaxAttentionBytes, dry.Convolutions.Max(c => c.TileBytes(tile)))));
        return new AutoTilingFigures(input, dry.PeakBytes, tiled);
    }

    /// <summary>Names calls alike for the backend's memory plan (<see cref="IBackend.BeginCall"/>).</summary>
    public string CallKey(bool encode, TensorShape input) => $"{(encode ? "encode" : "decode")} {input} {Mode} {Tile}";
}

/// <summary>
/// A dry run's memory figures for one input shape: the untiled activation peak, and for each candidate exact tile
/// (largest first) the bytes of its worst step (a convolution's tile or the attention). The same for every call of
/// that shape, so a pipeline keeps them.
/// </summary>
internal sealed record AutoTilingFigures(TensorShape Input, long UntiledBytes, IReadOnlyList<(int Tile, long Bytes)> TiledBytes);
