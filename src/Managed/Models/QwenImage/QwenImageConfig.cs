using NativeVae.Core;

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

    /// <summary>
    /// <c>is_residual</c> (Wan 2.2): each encoder level is one residual down block whose input, averaged down by
    /// AvgDown3D, is added to its output; each decoder level but the last one residual up block adding its input
    /// duplicated up by DupUp3D; and the upsamplers keep their channels.
    /// </summary>
    public bool IsResidual { get; init; }

    /// <summary><c>patch_size</c>: pixels per side folded into channels before the encoder and unfolded after the decoder (Wan 2.2: 2; 1: none).</summary>
    public int PatchSize { get; init; } = 1;

    /// <summary><c>decoder_base_dim</c> (Wan 2.2: 256); null: <see cref="BaseDim"/>.</summary>
    public int? DecoderBaseDim { get; init; }

    /// <summary>The decoder's base channels.</summary>
    public int DecoderBase => DecoderBaseDim ?? BaseDim;

    /// <summary>Channels of the image as the encoder takes it and the decoder makes it: the patchified pixels.</summary>
    public int PatchChannels => InputChannels * PatchSize * PatchSize;

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

    /// <summary>The decoder's levels: <c>decoder_base_dim * [dim_mult[-1]] + reversed(dim_mult)</c>.</summary>
    public int[] DecoderDims => [DecoderBase * DimMult[^1], .. DimMult.Reverse().Select(m => DecoderBase * m)];

    /// <summary>
    /// Input channels of decoder level <paramref name="level"/>: Wan 2.1's upsamplers halve the channels, so every
    /// level after the first starts from half the one before; Wan 2.2's keep them.
    /// </summary>
    public int DecoderLevelInput(int level) => level > 0 && !IsResidual ? DecoderDims[level] / 2 : DecoderDims[level];

    /// <summary>Output channels of a decoder upsampler over <paramref name="dim"/> channels.</summary>
    public int UpsampleOutput(int dim) => IsResidual ? dim : dim / 2;

    /// <summary>Whether encoder level <paramref name="level"/> halves time (its down block's last step, and Wan 2.2's shortcut).</summary>
    public bool DownsamplesTime(int level) => level < DimMult.Count - 1 && TemporalDownsample[level];

    /// <summary>
    /// Wan 2.2's AvgDown3D shortcut of encoder level <paramref name="level"/>: 2x2 (none on the last level), two frames
    /// on a temporal level, each output channel the mean of <c>in * factor / out</c> block channels.
    /// </summary>
    public PixelShuffleSpec DownShortcut(int level)
    {
        var dims = EncoderDims;
        int factor = level < DimMult.Count - 1 ? SpatialFactor : 1, frames = DownsamplesTime(level) ? 2 : 1;
        return new PixelShuffleSpec(factor, frames, dims[level] * frames * factor * factor / dims[level + 1]);
    }

    /// <summary>
    /// Wan 2.2's DupUp3D shortcut of decoder level <paramref name="level"/> (not the last): 2x2, two frames on a
    /// temporal level, each input channel repeated <c>out * factor / in</c> times.
    /// </summary>
    public PixelShuffleSpec UpShortcut(int level)
    {
        var dims = DecoderDims;
        int frames = TemporalUpsample[level] ? 2 : 1;
        return new PixelShuffleSpec(SpatialFactor, frames, dims[level + 1] * frames * SpatialFactor * SpatialFactor / dims[level]);
    }

    /// <summary>Pixels per side each level but the last halves the image by.</summary>
    private const int SpatialFactor = 2;

    /// <summary>Which decoder levels upsample time too: <c>temperal_downsample</c> reversed.</summary>
    public IReadOnlyList<bool> TemporalUpsample => TemporalDownsample.Reverse().ToArray();

    /// <summary>Pixels per latent element: each level but the last halves the image, after the patchify.</summary>
    public int DownsampleFactor => (1 << (DimMult.Count - 1)) * PatchSize;

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

    /// <summary>Wan 2.2's latents_mean (its config.json).</summary>
    public static readonly float[] Wan22Mean =
    [
        -0.2289f, -0.0052f, -0.1323f, -0.2339f, -0.2799f, 0.0174f, 0.1838f, 0.1557f, -0.1382f, 0.0542f, 0.2813f, 0.0891f,
        0.1570f, -0.0098f, 0.0375f, -0.1825f, -0.2246f, -0.1207f, -0.0698f, 0.5109f, 0.2665f, -0.2108f, -0.2158f, 0.2502f,
        -0.2055f, -0.0322f, 0.1109f, 0.1567f, -0.0729f, 0.0899f, -0.2799f, -0.1230f, -0.0313f, -0.1649f, 0.0117f, 0.0723f,
        -0.2839f, -0.2083f, -0.0520f, 0.3748f, 0.0152f, 0.1957f, 0.1433f, -0.2944f, 0.3573f, -0.0548f, -0.1681f, -0.0667f,
    ];

    /// <summary>Wan 2.2's latents_std (its config.json).</summary>
    public static readonly float[] Wan22Std =
    [
        0.4765f, 1.0364f, 0.4514f, 1.1677f, 0.5313f, 0.4990f, 0.4818f, 0.5013f, 0.8158f, 1.0344f, 0.5894f, 1.0901f,
        0.6885f, 0.6165f, 0.8454f, 0.4978f, 0.5759f, 0.3523f, 0.7135f, 0.6804f, 0.5833f, 1.4146f, 0.8986f, 0.5659f,
        0.7069f, 0.5338f, 0.4889f, 0.4917f, 0.4069f, 0.4999f, 0.6866f, 0.4093f, 0.5709f, 0.6065f, 0.6415f, 0.4944f,
        0.5726f, 1.2042f, 0.5458f, 1.6887f, 0.3971f, 1.0600f, 0.3943f, 0.5537f, 0.5444f, 0.4089f, 0.7468f, 0.7744f,
    ];

    /// <summary>Wan 2.2's published VAE (Wan2.2-TI2V-5B): residual blocks, a 2x2 patchify, 48 latent channels, /16.</summary>
    public static QwenImageConfig Wan22 { get; } = new()
    {
        BaseDim = 160,
        DecoderBaseDim = 256,
        ZDim = 48,
        IsResidual = true,
        PatchSize = 2,
        LatentsMean = Wan22Mean,
        LatentsStd = Wan22Std,
    };

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

    public const int MaxPatchSize = 4;

    /// <summary>Wan 2.2's shortcuts average or repeat whole channel groups: the dims must divide as AvgDown3D and DupUp3D assert.</summary>
    private void ValidateShortcuts()
    {
        var down = EncoderDims;
        for (int i = 0; i < DimMult.Count; i++)
        {
            int factor = (i < DimMult.Count - 1 ? SpatialFactor * SpatialFactor : 1) * (DownsamplesTime(i) ? 2 : 1);
            if ((long)down[i] * factor % down[i + 1] != 0)
                throw new ArgumentException($"config: encoder level {i} goes from {down[i]} to {down[i + 1]} channels; its AvgDown3D shortcut needs {down[i]} x {factor} to be a multiple of {down[i + 1]}");
        }
        var up = DecoderDims;
        for (int i = 0; i < DimMult.Count - 1; i++)
        {
            int factor = SpatialFactor * SpatialFactor * (TemporalUpsample[i] ? 2 : 1);
            if ((long)up[i + 1] * factor % up[i] != 0)
                throw new ArgumentException($"config: decoder level {i} goes from {up[i]} to {up[i + 1]} channels; its DupUp3D shortcut needs {up[i + 1]} x {factor} to be a multiple of {up[i]}");
        }
    }

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
        if (DecoderBase <= 0 || DimMult.Any(m => (long)m * DecoderBase > MaxChannels))
            throw new ArgumentException($"config: decoder_base_dim {DecoderBase} x dim_mult [{string.Join(", ", DimMult)}] must give 1 to {MaxChannels} channels per level");
        if (!IsResidual && DecoderDims.Skip(1).Any(d => d % 2 != 0))
            throw new ArgumentException($"config: base_dim {BaseDim} x dim_mult must be even: the decoder halves channels as it upsamples");
        if (PatchSize is < 1 or > MaxPatchSize)
            throw new ArgumentException($"config: patch_size {PatchSize} must be 1 to {MaxPatchSize}");
        if (TemporalDownsample.Count != DimMult.Count - 1)
            throw new ArgumentException($"config: temperal_downsample has {TemporalDownsample.Count} entries; dim_mult's {DimMult.Count} levels need {DimMult.Count - 1}");
        if (IsResidual) ValidateShortcuts();
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
