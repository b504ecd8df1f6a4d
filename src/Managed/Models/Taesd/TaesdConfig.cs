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

    public void Validate()
    {
        if (LatentChannels <= 0) throw new ArgumentException($"config: latent_channels {LatentChannels} must be positive");
        if (Channels <= 0 || (UseMidBlockGroupNorm && Channels * GroupNormWidening % GroupNormGroups != 0))
            throw new ArgumentException($"config: channels {Channels} must be positive");
        if (EncoderBlocks.Count < 1 || EncoderBlocks.Count != DecoderBlocks.Count)
            throw new ArgumentException("config: num_encoder_blocks and num_decoder_blocks must be non-empty lists of one length");
        if (EncoderBlocks.Concat(DecoderBlocks).Any(b => b < 0))
            throw new ArgumentException("config: block counts must not be negative");
    }
}
