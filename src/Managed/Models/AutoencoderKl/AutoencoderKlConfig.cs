namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// diffusers' <c>AutoencoderKL</c> configuration (the fields of its config.json that shape the network), and
/// <c>AutoencoderKLFlux2</c>'s: the same encoder and decoder, a decoder that may be narrower
/// (<see cref="DecoderBlockOutChannels"/>), and the <c>bn</c> buffers whose running statistics normalise the
/// pipeline's patchified latents (<see cref="LatentBatchNorm"/>).
/// </summary>
internal sealed record AutoencoderKlConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public IReadOnlyList<int> BlockOutChannels { get; init; } = [128, 256, 512, 512];

    /// <summary>
    /// <c>decoder_block_out_channels</c> (AutoencoderKLFlux2 only): the decoder's levels when they differ from the
    /// encoder's, as in FLUX.2's small decoder (96, 192, 384, 384); null uses <see cref="BlockOutChannels"/>.
    /// </summary>
    public IReadOnlyList<int>? DecoderBlockOutChannels { get; init; }

    /// <summary>The decoder's levels: <see cref="DecoderBlockOutChannels"/>, else <see cref="BlockOutChannels"/>.</summary>
    public IReadOnlyList<int> DecoderChannels => DecoderBlockOutChannels ?? BlockOutChannels;
    public int LayersPerBlock { get; init; } = 2;
    public int LatentChannels { get; init; } = 4;
    public int NormNumGroups { get; init; } = 32;
    public bool UseQuantConv { get; init; } = true;
    public bool UsePostQuantConv { get; init; } = true;
    public bool MidBlockAddAttention { get; init; } = true;
    public int SampleSize { get; init; } = 256;
    public float ScalingFactor { get; init; } = 0.18215f;
    public float? ShiftFactor { get; init; }

    /// <summary>
    /// True for <c>AutoencoderKLFlux2</c>: a <c>bn</c> (BatchNorm2d, affine=False) over the 2x2-patchified latent's
    /// <see cref="PatchedLatentChannels"/> channels, whose <c>running_mean</c> and <c>running_var</c> the pipeline
    /// normalises with. Encode and decode never call it.
    /// </summary>
    public bool LatentBatchNorm { get; init; }

    /// <summary><c>batch_norm_eps</c>: added to the running variance before its square root (1e-4).</summary>
    public float BatchNormEps { get; init; } = DefaultBatchNormEps;

    /// <summary>diffusers' default <c>batch_norm_eps</c>.</summary>
    public const float DefaultBatchNormEps = 1e-4f;

    /// <summary>The pipelines' patch edge: 2x2 latent pixels become one token of 4x the channels.</summary>
    public const int LatentPatch = 2;

    /// <summary>Channels of the patchified latent: 4 x <see cref="LatentChannels"/> (128 for FLUX.2).</summary>
    public int PatchedLatentChannels => LatentPatch * LatentPatch * LatentChannels;

    /// <summary>GroupNorm epsilon of every norm in the VAE (diffusers hard-codes 1e-6).</summary>
    public float NormEps { get; init; } = 1e-6f;

    /// <summary>Spatial downsampling factor: 2^(number of blocks - 1).</summary>
    public int DownsampleFactor => 1 << (BlockOutChannels.Count - 1);

    /// <summary>sd-vae-ft-mse (SD 1.x).</summary>
    public static AutoencoderKlConfig Sd { get; } = new();

    /// <summary>sdxl-vae-fp16-fix.</summary>
    public static AutoencoderKlConfig Sdxl { get; } = new() { SampleSize = 512, ScalingFactor = 0.13025f };

    /// <summary>FLUX.1 <c>ae</c>: 16 latent channels, no quant convs.</summary>
    public static AutoencoderKlConfig Flux1 { get; } = new()
    {
        LatentChannels = 16,
        UseQuantConv = false,
        UsePostQuantConv = false,
        SampleSize = 1024,
        ScalingFactor = 0.3611f,
        ShiftFactor = 0.1159f,
    };

    /// <summary>SD3 / SD3.5 <c>vae</c>: FLUX.1's structure with its own factors.</summary>
    public static AutoencoderKlConfig Sd3 { get; } = Flux1 with { ScalingFactor = 1.5305f, ShiftFactor = 0.0609f };

    /// <summary>
    /// FLUX.2 <c>vae</c> (AutoencoderKLFlux2): SD's structure with 32 latent channels and a <c>bn</c> over the
    /// 128 patchified channels; its config has no scaling or shift factor (the batch norm takes their place).
    /// </summary>
    public static AutoencoderKlConfig Flux2 { get; } = new()
    {
        LatentChannels = 32,
        SampleSize = 1024,
        ScalingFactor = 1f,
        LatentBatchNorm = true,
    };

    /// <summary>FLUX.2's small decoder: the full encoder, a decoder of (96, 192, 384, 384).</summary>
    public static AutoencoderKlConfig Flux2SmallDecoder { get; } = Flux2 with { DecoderBlockOutChannels = [96, 192, 384, 384] };

    /// <summary>The published config of an AutoencoderKL family.</summary>
    public static AutoencoderKlConfig For(ModelFamily family) => family switch
    {
        ModelFamily.Sd => Sd,
        ModelFamily.Sdxl => Sdxl,
        ModelFamily.Flux => Flux1,
        ModelFamily.Sd3 => Sd3,
        ModelFamily.Flux2 => Flux2,
        _ => throw new ArgumentException($"family {family.Name()} is a tiny autoencoder, not an AutoencoderKL"),
    };

    /// <summary>A small configuration for fast tests: two blocks of 32 and 64 channels, 8 groups.</summary>
    public static AutoencoderKlConfig Small { get; } = new()
    {
        BlockOutChannels = [32, 64],
        LayersPerBlock = 1,
        NormNumGroups = 8,
        SampleSize = 32,
        ScalingFactor = 1f,
    };

    /// <summary>Most resolution levels (block_out_channels entries): real VAEs have 4; 8 is a 128x downsampling.</summary>
    public const int MaxBlocks = 8;

    /// <summary>Most resnets per level (layers_per_block): real VAEs have 2.</summary>
    public const int MaxLayersPerBlock = 16;

    /// <summary>Most feature channels of a level: real VAEs have at most 512.</summary>
    public const int MaxChannels = 4096;

    /// <summary>Most latent channels: real VAEs have 4, 16 or 32.</summary>
    public const int MaxLatentChannels = 256;

    /// <summary>Most image channels (in_channels, out_channels): real VAEs have 3.</summary>
    public const int MaxImageChannels = 16;

    /// <summary>Largest sample_size (the training tile): real VAEs have 256 to 1024.</summary>
    public const int MaxSampleSize = 16384;

    /// <summary>
    /// Checks the invariants the network relies on and the bounds above, before anything is sized from the config;
    /// the message names the key (diffusers' name) and the rule.
    /// </summary>
    public void Validate()
    {
        if (BlockOutChannels.Count is 0 or > MaxBlocks)
            throw new ArgumentException($"config: block_out_channels has {BlockOutChannels.Count} entries; it must have 1 to {MaxBlocks}");
        if (NormNumGroups is <= 0 or > MaxChannels)
            throw new ArgumentException($"config: norm_num_groups {NormNumGroups} must be 1 to {MaxChannels}");
        if (DecoderBlockOutChannels is { } decoder && decoder.Count != BlockOutChannels.Count)
            throw new ArgumentException(
                $"config: decoder_block_out_channels has {decoder.Count} entries; it must have as many as block_out_channels ({BlockOutChannels.Count})");
        foreach (int c in BlockOutChannels.Concat(DecoderBlockOutChannels ?? []))
        {
            if (c is <= 0 or > MaxChannels)
                throw new ArgumentException($"config: block_out_channels entry {c} must be 1 to {MaxChannels}");
            if (c % NormNumGroups != 0)
                throw new ArgumentException($"config: block_out_channels entry {c} is not a multiple of norm_num_groups {NormNumGroups}");
        }
        if (LayersPerBlock is <= 0 or > MaxLayersPerBlock)
            throw new ArgumentException($"config: layers_per_block {LayersPerBlock} must be 1 to {MaxLayersPerBlock}");
        if (LatentChannels is <= 0 or > MaxLatentChannels)
            throw new ArgumentException($"config: latent_channels {LatentChannels} must be 1 to {MaxLatentChannels}");
        if (InChannels is <= 0 or > MaxImageChannels)
            throw new ArgumentException($"config: in_channels {InChannels} must be 1 to {MaxImageChannels}");
        if (OutChannels is <= 0 or > MaxImageChannels)
            throw new ArgumentException($"config: out_channels {OutChannels} must be 1 to {MaxImageChannels}");
        if (SampleSize is <= 0 or > MaxSampleSize)
            throw new ArgumentException($"config: sample_size {SampleSize} must be 1 to {MaxSampleSize}");
        if (!float.IsFinite(ScalingFactor) || ScalingFactor == 0)
            throw new ArgumentException($"config: scaling_factor {ScalingFactor} must be a finite, non-zero number");
        if (!float.IsFinite(BatchNormEps) || BatchNormEps < 0)
            throw new ArgumentException($"config: batch_norm_eps {BatchNormEps} must be a finite, non-negative number");
        if (ShiftFactor is float shift && !float.IsFinite(shift))
            throw new ArgumentException($"config: shift_factor {shift} must be finite");
    }
}
