namespace NativeVae;

/// <summary>How an encode or decode splits its work.</summary>
public enum TilingMode
{
    /// <summary>The whole image at once.</summary>
    None,

    /// <summary>
    /// diffusers' tiled encode/decode exactly (tile = the config's sample_size, overlap 0.25, blended seams), so the
    /// output equals diffusers' tiled output. Only used when the image is larger than one tile, as in diffusers.
    /// </summary>
    Blend,

    /// <summary>
    /// Seam-free and memory-bounded: convolutions run per tile with halos, GroupNorm statistics cover the whole
    /// image, attention sees every token. The output equals the untiled output (to float rounding).
    /// </summary>
    Exact,

    /// <summary>Untiled when the estimated memory fits the device (or the caller's limit), else <see cref="Exact"/>.</summary>
    Auto,
}
