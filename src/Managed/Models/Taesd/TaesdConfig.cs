using System.Text.Json.Nodes;

namespace NativeVae.Models.Taesd;

/// <summary>
/// The shape of a tiny autoencoder (madebyollin/taesd; diffusers' <c>AutoencoderTiny</c>): 64 channels
/// throughout, four stages, 8x spatial compression. Images are in [0, 1]; latents are raw (the published
/// TAESD latents are already in the scaled latent space of their big VAE, so scale 1 and shift 0).
/// </summary>
internal sealed record TaesdConfig
{
    public int LatentChannels { get; init; } = 4;

    /// <summary>Feature channels of every stage (64 in every published model).</summary>
    public int Channels { get; init; } = 64;

    /// <summary>Blocks per encoder stage, after conv_in (stage 0) or after a stride-2 conv (others).</summary>
    public IReadOnlyList<int> EncoderBlocks { get; init; } = [1, 3, 3, 3];

    /// <summary>Blocks per decoder stage, each stage but the last followed by upsample + conv.</summary>
    public IReadOnlyList<int> DecoderBlocks { get; init; } = [3, 3, 3, 1];

    /// <summary>
    /// TAEF2: the blocks of the lowest-resolution stage (the encoder's last, the decoder's first) first add
    /// <c>conv1x1(relu(GroupNorm(conv1x1(x, C -> 4C))), 4C -> C)</c> to their input.
    /// </summary>
    public bool UseMidBlockGroupNorm { get; init; }

    public float ScalingFactor { get; init; } = 1f;

    public float ShiftFactor { get; init; }

    /// <summary>Groups of the TAEF2 GroupNorm.</summary>
    public const int GroupNormGroups = 4;

    /// <summary>PyTorch's default GroupNorm epsilon, which TAEF2 keeps.</summary>
    public const float GroupNormEps = 1e-5f;

    /// <summary>The GroupNorm branch widens the channels by this factor.</summary>
    public const int GroupNormWidening = 4;

    public const int ImageChannels = 3;

    /// <summary>Spatial downsampling factor: 2 per stage after the first.</summary>
    public int DownsampleFactor => 1 << (EncoderBlocks.Count - 1);

    public static TaesdConfig Taesd { get; } = new();
    public static TaesdConfig Taesdxl { get; } = new();
    public static TaesdConfig Taef1 { get; } = new() { LatentChannels = 16 };
    public static TaesdConfig Taef2 { get; } = new() { LatentChannels = 32, UseMidBlockGroupNorm = true };

    /// <summary>The published config of a tiny family.</summary>
    public static TaesdConfig For(ModelFamily family) => family switch
    {
        ModelFamily.Taesd => Taesd,
        ModelFamily.Taesdxl => Taesdxl,
        ModelFamily.Taef1 => Taef1,
        ModelFamily.Taef2 => Taef2,
        _ => throw new ArgumentException($"{family.Name()} is not a tiny autoencoder family"),
    };

    /// <summary>Most stages (num_encoder_blocks entries): published models have 4.</summary>
    public const int MaxStages = 8;

    /// <summary>Most blocks in one stage: published models have at most 3.</summary>
    public const int MaxBlocksPerStage = 16;

    /// <summary>Most feature channels: published models have 64.</summary>
    public const int MaxChannels = 4096;

    /// <summary>Most latent channels: published models have 4, 16 or 32.</summary>
    public const int MaxLatentChannels = 256;

    /// <summary>
    /// Checks the invariants the network relies on and the bounds above, before anything is sized from the config;
    /// the message names the key (diffusers' name) and the rule.
    /// </summary>
    public void Validate()
    {
        if (LatentChannels is <= 0 or > MaxLatentChannels)
            throw new ArgumentException($"config: latent_channels {LatentChannels} must be 1 to {MaxLatentChannels}");
        if (Channels is <= 0 or > MaxChannels)
            throw new ArgumentException($"config: block_out_channels entry {Channels} must be 1 to {MaxChannels}");
        if (UseMidBlockGroupNorm && Channels * GroupNormWidening % GroupNormGroups != 0)
            throw new ArgumentException($"config: block_out_channels entry {Channels} x {GroupNormWidening} is not a multiple of the {GroupNormGroups} GroupNorm groups");
        if (EncoderBlocks.Count is < 1 or > MaxStages || EncoderBlocks.Count != DecoderBlocks.Count)
            throw new ArgumentException(
                $"config: num_encoder_blocks ({EncoderBlocks.Count} entries) and num_decoder_blocks ({DecoderBlocks.Count}) must be lists of one length, 1 to {MaxStages}");
        foreach (var (key, blocks) in new[] { ("num_encoder_blocks", EncoderBlocks), ("num_decoder_blocks", DecoderBlocks) })
        {
            foreach (int b in blocks)
            {
                if (b is < 0 or > MaxBlocksPerStage)
                    throw new ArgumentException($"config: {key} entry {b} must be 0 to {MaxBlocksPerStage}");
            }
        }
        if (!float.IsFinite(ScalingFactor) || ScalingFactor == 0)
            throw new ArgumentException($"config: scaling_factor {ScalingFactor} must be a finite, non-zero number");
        if (!float.IsFinite(ShiftFactor))
            throw new ArgumentException($"config: shift_factor {ShiftFactor} must be finite");
    }
}
