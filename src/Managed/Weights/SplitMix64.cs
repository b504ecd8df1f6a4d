namespace NativeVae.Weights;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, seedable, platform-independent generator. Used wherever NativeVae
/// needs reproducible numbers (seeded weights, test inputs, latent sampling).
/// </summary>
internal struct SplitMix64(ulong seed)
{
    private ulong _state = seed;

    public ulong Next()
    {
        _state += 0x9E3779B97F4A7C15UL;
        ulong z = _state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A double in [0, 1) from the top 53 bits.</summary>
    public double NextDouble() => (Next() >> 11) * (1.0 / (1UL << 53));
}
