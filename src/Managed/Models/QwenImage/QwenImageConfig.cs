namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers' <c>AutoencoderKLQwenImage</c> configuration (Qwen-Image's VAE, the Wan 2.1 video VAE): the fields of its
/// config.json, and the channel counts they imply.
/// </summary>
internal sealed record QwenImageConfig
{
    public int BaseDim { get; init; } = 96;

    /// <summary><c>z_dim</c>: latent channels.</summary>
    public int ZDim { get; init; } = 16;

    public IReadOnlyList<int> DimMult { get; init; } = [1, 2, 4, 4];

    public int NumResBlocks { get; init; } = 2;

    /// <summary><c>temperal_downsample</c> (sic): which encoder levels also halve time (their resample has a time_conv).</summary>
    public IReadOnlyList<bool> TemporalDownsample { get; init; } = [false, true, true];

    public int InputChannels { get; init; } = 3;

    /// <summary>The pipeline's per-channel latent mean (<c>latents_mean</c>).</summary>
    public IReadOnlyList<float> LatentsMean { get; init; } = PublishedMean;

    /// <summary>The pipeline's per-channel latent std (<c>latents_std</c>).</summary>
    public IReadOnlyList<float> LatentsStd { get; init; } = PublishedStd;

    /// <summary>diffusers' defaults, which Qwen-Image's config repeats.</summary>
    public static readonly float[] PublishedMean =
        [-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f, 1.5508f, 0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f];

    /// <inheritdoc cref="PublishedMean"/>
    public static readonly float[] PublishedStd =
        [2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f, 3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f];

    /// <summary>The encoder's levels: <c>base_dim * [1] + dim_mult</c>, the first being conv_in's output.</summary>
    public int[] EncoderDims => [BaseDim, .. DimMult.Select(m => BaseDim * m)];

    /// <summary>The decoder's levels: <c>base_dim * [dim_mult[-1]] + reversed(dim_mult)</c>.</summary>
    public int[] DecoderDims => [BaseDim * DimMult[^1], .. DimMult.Reverse().Select(m => BaseDim * m)];

    /// <summary>Which decoder levels upsample time too: <c>temperal_downsample</c> reversed.</summary>
    public IReadOnlyList<bool> TemporalUpsample => TemporalDownsample.Reverse().ToArray();

    /// <summary>Pixels per latent element: each level but the last halves the image.</summary>
    public int DownsampleFactor => 1 << (DimMult.Count - 1);

    /// <summary>Frames per chunk of diffusers' <c>_encode</c> after the first frame, whatever the config.</summary>
    public const int ChunkFrames = 4;

    /// <summary>Frames per latent frame after the first: 2 per temporal level (4 for Wan 2.1).</summary>
    public int TemporalFactor => 1 << TemporalDownsample.Count(t => t);

    /// <summary>The frames of a <paramref name="frames"/>-frame video that encode uses: the first, then whole chunks (diffusers drops the rest).</summary>
    public static int UsableFrames(int frames) => frames < 1 ? 0 : 1 + (frames - 1) / ChunkFrames * ChunkFrames;

    /// <summary>Latent frames of a <paramref name="frames"/>-frame video: one for the first frame, then per chunk.</summary>
    public int LatentFrames(int frames) => frames < 1 ? 0 : 1 + (frames - 1) / ChunkFrames * (ChunkFrames / TemporalFactor);

    /// <summary>Frames decoded from <paramref name="latentFrames"/> latent frames.</summary>
    public int DecodedFrames(int latentFrames) => latentFrames < 1 ? 0 : 1 + (latentFrames - 1) * TemporalFactor;

    /// <summary>Qwen-Image's published VAE.</summary>
    public static QwenImageConfig QwenImage { get; } = new();

    /// <summary>A small configuration for fast tests: base 8, levels (1, 2), 4 latent channels.</summary>
    public static QwenImageConfig Small { get; } = new()
    {
        BaseDim = 8,
        ZDim = 4,
        DimMult = [1, 2],
        NumResBlocks = 1,
        TemporalDownsample = [true],
        LatentsMean = [0.25f, -0.5f, 0.125f, 1f],
        LatentsStd = [1.5f, 0.75f, 2f, 1.25f],
    };

    public const int MaxLevels = 8;
    public const int MaxChannels = 4096;
    public const int MaxResBlocks = 16;
    public const int MaxLatentChannels = 256;
    public const int MaxImageChannels = 16;

    /// <summary>Checks that a chunk of frames halves evenly on every temporal level, as diffusers' chunking needs.</summary>
    public void ValidateForVideo()
    {
        Validate();
        if (TemporalFactor > ChunkFrames)
            throw new ArgumentException($"config: temperal_downsample halves time {TemporalDownsample.Count(t => t)} times; a chunk of {ChunkFrames} frames allows at most 2");
    }

    /// <summary>Checks the invariants the network relies on, naming diffusers' key.</summary>
    public void Validate()
    {
        if (DimMult.Count is < 1 or > MaxLevels)
            throw new ArgumentException($"config: dim_mult has {DimMult.Count} entries; it must have 1 to {MaxLevels}");
        if (BaseDim <= 0 || DimMult.Any(m => m <= 0 || (long)m * BaseDim > MaxChannels))
            throw new ArgumentException($"config: base_dim {BaseDim} x dim_mult [{string.Join(", ", DimMult)}] must give 1 to {MaxChannels} channels per level");
        if (DecoderDims.Skip(1).Any(d => d % 2 != 0))
            throw new ArgumentException($"config: base_dim {BaseDim} x dim_mult must be even: the decoder halves channels as it upsamples");
        if (TemporalDownsample.Count != DimMult.Count - 1)
            throw new ArgumentException($"config: temperal_downsample has {TemporalDownsample.Count} entries; dim_mult's {DimMult.Count} levels need {DimMult.Count - 1}");
        if (NumResBlocks is <= 0 or > MaxResBlocks)
            throw new ArgumentException($"config: num_res_blocks {NumResBlocks} must be 1 to {MaxResBlocks}");
        if (ZDim is <= 0 or > MaxLatentChannels)
            throw new ArgumentException($"config: z_dim {ZDim} must be 1 to {MaxLatentChannels}");
        if (InputChannels is <= 0 or > MaxImageChannels)
            throw new ArgumentException($"config: input_channels {InputChannels} must be 1 to {MaxImageChannels}");
        foreach (var (key, values) in new[] { ("latents_mean", LatentsMean), ("latents_std", LatentsStd) })
        {
            if (values.Count != ZDim)
                throw new ArgumentException($"config: {key} has {values.Count} values; z_dim {ZDim} needs one per latent channel");
            if (values.Any(v => !float.IsFinite(v)))
                throw new ArgumentException($"config: {key} holds a value that is not finite");
        }
        if (LatentsStd.Any(v => v == 0))
            throw new ArgumentException("config: latents_std holds a 0; the pipeline divides by it");
    }
}
