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

    /// <summary>
    /// The caller's choice, with <see cref="TilingMode.Auto"/> resolved by <see cref="Auto"/>. An untiled or exact call
    /// whose dry-run need exceeds the budget is refused here, before any work, never by running out of memory.
    /// </summary>
    /// <param name="figures">the input's dry-run figures (cached by the caller per shape).</param>
    /// <exception cref="ArgumentException">the tile size is not positive or the mode is unknown.</exception>
    /// <exception cref="InsufficientMemoryException">the chosen mode needs more than the budget; the message gives both.</exception>
    public static TilingPlan Choose(IVaeModel model, TilingMode mode, int? tile, long? memoryLimit, Func<AutoTilingFigures> figures)
    {
        if (tile is <= 0) throw new ArgumentException($"tile size {tile} must be positive");
        switch (mode)
        {
            case TilingMode.Auto:
                return Auto(model, figures(), memoryLimit);
            case TilingMode.None:
            {
                var f = figures();
                RequireWithin(f.UntiledBytes, Budget(model, memoryLimit), $"untiled, {f.Input}", "use TilingMode.Exact or Auto");
                return new TilingPlan(mode, tile);
            }
            case TilingMode.Exact:
            {
                var f = figures();
                int exactTile = tile ?? DefaultExactTile;
                RequireWithin(f.TileBytes(exactTile), Budget(model, memoryLimit), $"exact-tiled with tile {exactTile}, {f.Input}", "use a smaller tile or Auto");
                return new TilingPlan(mode, tile);
            }
            case TilingMode.Blend:
                return new TilingPlan(mode, tile);
            default:
                throw new ArgumentException($"tiling mode {(int)mode} is not one of None, Blend, Exact, Auto");
        }
    }

    private static void RequireWithin(long need, long budget, string what, string advice)
    {
        if (need > budget)
            throw new InsufficientMemoryException(
                $"{what}: the call needs {MiB(need)} MiB of activations, {MiB(budget)} MiB are available (VaeOptions.MemoryLimitBytes, " +
                $"else {UsableMemoryFraction:P0} of the device's memory less what it holds); {advice}");
    }

    private static long MiB(long bytes) => Math.Max(0, bytes) / (1024 * 1024);

    /// <summary>Bytes a call's activations may take: the caller's limit, else a share of the device's memory less what it holds.</summary>
    private static long Budget(IVaeModel model, long? memoryLimit) => memoryLimit
        ?? (long)(model.Backend.Capabilities.MemoryCapacityBytes * UsableMemoryFraction) - model.Backend.Memory.LiveBytes;

    /// <summary>
    /// Untiled when the dry-run peak of activations fits the budget (the caller's limit, else a share of the device's
    /// memory less what it already holds), else exact tiling with the largest power-of-two tile whose worst step fits.
    /// </summary>
    /// <exception cref="InsufficientMemoryException">not even the smallest tile fits.</exception>
    public static TilingPlan Auto(IVaeModel model, AutoTilingFigures figures, long? memoryLimit)
    {
        long budget = Budget(model, memoryLimit);
        if (figures.UntiledBytes <= budget) return new TilingPlan(TilingMode.None, null);
        for (int tile = DefaultExactTile; tile >= SmallestExactTile; tile /= 2)
            if (figures.TileBytes(tile) <= budget) return new TilingPlan(TilingMode.Exact, tile);
        throw new InsufficientMemoryException(
            $"{figures.Input}: even {SmallestExactTile}-element exact tiles need {figures.TileBytes(SmallestExactTile)} bytes of activations, " +
            $"more than the {budget} bytes available; raise MemoryLimitBytes");
    }

    /// <summary>The dry run <see cref="Auto"/> plans from, for one input shape on one model's backend.</summary>
    public static AutoTilingFigures Measure(IVaeModel model, TensorShape input, bool encode)
    {
        using var dry = new DryRunBackend { FusesNormIntoConv = model.Backend.Capabilities.FusesNormIntoConv };
        using (var x = dry.Allocate(input))
        using (encode ? model.Encode(dry, x) : model.Decode(dry, x)) { }
        return new AutoTilingFigures(input, dry.PeakBytes, dry.MaxAttentionBytes, dry.Convolutions.ToArray());
    }

    /// <summary>Names calls alike for the backend's memory plan (<see cref="IBackend.BeginCall"/>).</summary>
    public string CallKey(bool encode, TensorShape input) => $"{(encode ? "encode" : "decode")} {input} {Mode} {Tile}";
}

/// <summary>
/// A dry run's memory figures for one input shape: the untiled activation peak, the attention's bytes and every
/// convolution. The same for every call of that shape, so a pipeline keeps them.
/// </summary>
internal sealed record AutoTilingFigures(TensorShape Input, long UntiledBytes, long AttentionBytes,
    IReadOnlyList<DryRunBackend.Conv2dRecord> Convolutions)
{
    /// <summary>Exact tiling's worst step with <paramref name="tile"/>: a convolution's tile with its halo, or the attention.</summary>
    public long TileBytes(int tile) => Math.Max(AttentionBytes, Convolutions.Count == 0 ? 0 : Convolutions.Max(c => c.TileBytes(tile)));
}
