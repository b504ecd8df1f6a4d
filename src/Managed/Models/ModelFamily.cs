namespace NativeVae;

/// <summary>The published VAE families NativeVae runs.</summary>
public enum ModelFamily
{
    /// <summary>SD 1.x/2.x AutoencoderKL (sd-vae-ft-mse).</summary>
    Sd,

    /// <summary>SDXL AutoencoderKL (sdxl-vae-fp16-fix): SD's architecture, another scaling factor.</summary>
    Sdxl,

    /// <summary>FLUX.1 <c>ae</c>: 16 latent channels, no quant convs, scale and shift.</summary>
    Flux,

    /// <summary>SD3 / SD3.5: FLUX.1's architecture with its own scale (1.5305) and shift (0.0609).</summary>
    /// <remarks>Placed before the tiny families: <see cref="ModelFamilies.IsTiny"/> compares the order.</remarks>
    Sd3,

    /// <summary>
    /// FLUX.2 <c>vae</c> (AutoencoderKLFlux2): SD's structure, 32 latent channels, and a batch norm whose running
    /// statistics normalise the pipeline's 2x2-patchified latents; its small decoder too.
    /// </summary>
    Flux2,

    /// <summary>
    /// Qwen-Image's VAE (AutoencoderKLQwenImage, the Wan 2.1 video VAE) on one frame: 16 latent channels with a frame
    /// axis, <c>[N, 16, 1, h, w]</c>, an RMS norm, and per-channel latents_mean/std for the pipeline's packed tokens.
    /// </summary>
    QwenImage,

    /// <summary>
    /// The Wan 2.1 video VAE (AutoencoderKLWan; Wan 2.1 and Wan 2.2 A14B): Qwen-Image's network on video
    /// <c>[N, 3, T, H, W]</c>, causal in time, 16 latent channels, <c>[N, 16, 1 + (T - 1) / 4, H/8, W/8]</c>.
    /// </summary>
    Wan,

    /// <summary>
    /// The Wan 2.2 video VAE (AutoencoderKLWan with <c>is_residual</c>; Wan 2.2 TI2V-5B): a 2x2 patchify, residual
    /// blocks with parameter-free shortcuts, 48 latent channels, <c>[N, 48, 1 + (T - 1) / 4, H/16, W/16]</c>.
    /// </summary>
    Wan22,

    /// <summary>TAESD, the tiny autoencoder for the SD latent space.</summary>
    Taesd,

    /// <summary>TAESDXL, the tiny autoencoder for the SDXL latent space.</summary>
    Taesdxl,

    /// <summary>TAEF1, the tiny autoencoder for the FLUX.1 latent space (16 channels).</summary>
    Taef1,

    /// <summary>TAEF2, the tiny autoencoder for the FLUX.2 latent space (32 channels, GroupNorm blocks).</summary>
    Taef2,
}

/// <summary>Names and kinds of <see cref="ModelFamily"/> values.</summary>
public static class ModelFamilies
{
    /// <summary>The family's command-line and metadata name: sd, sdxl, flux, sd3, flux2, qwenimage, wan, wan22, taesd, taesdxl, taef1, taef2.</summary>
    public static string Name(this ModelFamily family) => family.ToString().ToLowerInvariant();

    /// <summary>True for the TAESD family (the tiny autoencoders), false for AutoencoderKL.</summary>
    public static bool IsTiny(this ModelFamily family) => family >= ModelFamily.Taesd;

    /// <summary>Channels of the family's latent: 4 (SD, SDXL, TAESD, TAESDXL), 16 (FLUX.1, SD3, Qwen-Image, Wan 2.1, TAEF1), 32 (FLUX.2, TAEF2), 48 (Wan 2.2).</summary>
    public static int LatentChannels(this ModelFamily family) =>
        family == ModelFamily.Wan22 ? Models.QwenImage.QwenImageConfig.Wan22.ZDim
        : family.IsWanNetwork() ? Models.QwenImage.QwenImageConfig.QwenImage.ZDim
        : family.IsTiny() ? Models.Taesd.TaesdConfig.For(family).LatentChannels
        : Models.AutoencoderKl.AutoencoderKlConfig.For(family).LatentChannels;

    /// <summary>
    /// The scaling factor the family publishes in its config (SD 0.18215, SDXL 0.13025, FLUX.1 0.3611, tiny 1), or
    /// null for FLUX.2 and Qwen-Image, whose pipelines normalise with statistics instead.
    /// </summary>
    public static float? PublishedScalingFactor(this ModelFamily family) =>
        family == ModelFamily.Flux2 || family.IsWanNetwork() ? null
        : family.IsTiny() ? Models.Taesd.TaesdConfig.For(family).ScalingFactor
        : Models.AutoencoderKl.AutoencoderKlConfig.For(family).ScalingFactor;

    /// <summary>The shift factor the family publishes (FLUX.1 0.1159, SD3 0.0609), or null where it has none.</summary>
    public static float? PublishedShiftFactor(this ModelFamily family)
    {
        if (family.IsWanNetwork()) return null;
        if (!family.IsTiny()) return Models.AutoencoderKl.AutoencoderKlConfig.For(family).ShiftFactor;
        float shift = Models.Taesd.TaesdConfig.For(family).ShiftFactor;
        return shift == 0 ? null : shift;
    }


    /// <summary>Pixels per latent element along each axis: 16 for Wan 2.2 (a 2x2 patchify, then /8), 8 for every other family.</summary>
    public static int DownsampleFactor(this ModelFamily family) =>
        family == ModelFamily.Wan22 ? Models.QwenImage.QwenImageConfig.Wan22.DownsampleFactor : CommonDownsampleFactor;

    private const int CommonDownsampleFactor = 8;

    /// <summary>True for the video families, whose tensors have a frame axis: wan, wan22.</summary>
    public static bool IsVideo(this ModelFamily family) => family is ModelFamily.Wan or ModelFamily.Wan22;

    /// <summary>True for the families of the Wan network (AutoencoderKLQwenImage / AutoencoderKLWan): qwenimage, wan, wan22.</summary>
    internal static bool IsWanNetwork(this ModelFamily family) => family is ModelFamily.QwenImage or ModelFamily.Wan or ModelFamily.Wan22;

    /// <summary>Parses a family name (case-insensitive).</summary>
    /// <exception cref="ArgumentException">an unknown name; the message lists the known ones.</exception>
    public static ModelFamily Parse(string name)
    {
        foreach (var family in Enum.GetValues<ModelFamily>())
        {
            if (string.Equals(family.Name(), name, StringComparison.OrdinalIgnoreCase)) return family;
        }
        throw new ArgumentException($"unknown model family '{name}' (known: {string.Join(", ", Enum.GetValues<ModelFamily>().Select(f => f.Name()))})");
    }
}
