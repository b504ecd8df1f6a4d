namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// diffusers' <c>AutoencoderKL</c> configuration (the fields of its config.json that shape the network).
/// </summary>
internal sealed record AutoencoderKlConfig
{
    public int InChannels { get; init; } = 3;
    public int OutChannels { get; init; } = 3;
    public IReadOnlyList<int> BlockOutChannels { get; init; } = [128, 256, 512, 512];
    public int LayersPerBlock { get; init; } = 2;
    public int LatentChannels { get; init; } = 4;
    public int NormNumGroups { get; init; } = 32;
    public bool UseQuantConv { get; init; } = true;
    public bool UsePostQuantConv { get; init; } = true;
    public bool MidBlockAddAttention { get; init; } = true;
    public int SampleSize { get; init; } = 256;
    public float ScalingFactor { get; init; } = 0.18215f;
    public float? ShiftFactor { get; init; }

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

    /// <summary>A small configuration for fast tests: two blocks of 32 and 64 channels, 8 groups.</summary>
    public static AutoencoderKlConfig Small { get; } = new()
    {
        BlockOutChannels = [32, 64],
        LayersPerBlock = 1,
        NormNumGroups = 8,
        SampleSize = 32,
        ScalingFactor = 1f,
    };

    /// <summary>Checks the invariants the network relies on; the message names the field.</summary>
    public void Validate()
    {
        if (BlockOutChannels.Count == 0) throw new ArgumentException("config: block_out_channels is empty");
        foreach (int c in BlockOutChannels)
        {
            if (c <= 0 || c % NormNumGroups != 0)
                throw new ArgumentException($"config: block_out_channels entry {c} is not a positive multiple of norm_num_groups {NormNumGroups}");
        }
        if (LayersPerBlock <= 0) throw new ArgumentException($"config: layers_per_block {LayersPerBlock} must be positive");
        if (LatentChannels <= 0) throw new ArgumentException($"config: latent_channels {LatentChannels} must be positive");
        if (InChannels <= 0 || OutChannels <= 0) throw new ArgumentException("config: in_channels and out_channels must be positive");
    }
}
