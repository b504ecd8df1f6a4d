namespace NativeVae.Tiling;

/// <summary>
/// Which blend tiles (edges in pixels) an algorithm can use: multiples of <see cref="Unit"/>, at least
/// <see cref="Smallest"/>. A tile whose blend band or stride is not a whole number of latent rows shifts every later
/// tile by a fraction of a latent and assembles an output of the wrong size, so such tiles are refused, not rounded:
/// the library has no way to tell the caller it changed their tile.
/// </summary>
/// <param name="Algorithm">Names the algorithm in messages ("AutoencoderKL", "TAESD-family").</param>
/// <param name="Unit">Valid tiles are multiples of this many pixels.</param>
/// <param name="Smallest">The smallest valid tile, a multiple of <paramref name="Unit"/>.</param>
/// <param name="Reason">Why, for the message (e.g. "4 x the downsampling factor 8").</param>
internal readonly record struct BlendTileRule(string Algorithm, int Unit, int Smallest, string Reason)
{
    /// <summary>True when <paramref name="tile"/> is a multiple of <see cref="Unit"/> and at least <see cref="Smallest"/>.</summary>
    public bool Accepts(int tile) => tile >= Smallest && tile % Unit == 0;

    /// <summary>Throws unless <see cref="Accepts"/>; the message names the tile, the rule and the nearest valid tiles.</summary>
    /// <param name="tile">The blend tile edge in pixels.</param>
    /// <param name="origin">Where the tile came from, for the message (e.g. "the model's sample_size"), or null.</param>
    /// <exception cref="ArgumentException">the tile is not valid for this algorithm.</exception>
    public void Require(int tile, string? origin = null)
    {
        if (Accepts(tile)) return;
        string from = origin is null ? "" : $" ({origin})";
        string atLeast = Smallest > Unit ? $", at least {Smallest}" : "";
        var (below, above) = Nearest(tile);
        string examples = below is { } b ? $"{b} or {above}" : $"{above}";
        throw new ArgumentException(
            $"blend tile {tile}{from}: {Algorithm} blend tiles must be multiples of {Unit} ({Reason}){atLeast}, e.g. {examples}",
            "tileSize");
    }

    /// <summary>The largest valid tile below <paramref name="tile"/> (null when none is) and the smallest above it.</summary>
    public (int? Below, int Above) Nearest(int tile)
    {
        int below = tile / Unit * Unit;
        if (below == tile) below -= Unit;
        int above = Math.Max(Smallest, (tile / Unit + 1) * Unit);
        return (below >= Smallest ? below : null, above);
    }
}
