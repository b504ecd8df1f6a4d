using NativeVae.Models.AutoencoderKl;

namespace NativeVae.Loading;

/// <summary>
/// Which AutoencoderKL family a checkpoint is, when the caller does not say (<see cref="VaeLoadOptions.Family"/>).
/// The structure splits SD-like (4 latent channels, quant convs) from FLUX-like (16, none); within each, the
/// families share the structure exactly and differ only in their factors:
/// <list type="bullet">
/// <item>from a config (config.json or NativeVae metadata): the factors, compared within <see cref="FactorTolerance"/>
///   (0.13025 is SDXL, else SD; 1.5305 with shift 0.0609 is SD3, else FLUX.1);</item>
/// <item>from tensors alone: SD (SDXL cannot be told from SD), and for the FLUX-like structure SD3 only when the
///   file is a full SD3 checkpoint (its MMDiT's <see cref="Sd3TransformerMarker"/> tensors beside the VAE); a bare
///   16-channel VAE file is FLUX.1 by default — FLUX.1 <c>ae.safetensors</c> and an SD3 VAE saved alone have the same
///   names and shapes, so <c>--family sd3</c> chooses.</item>
/// </list>
/// </summary>
internal static class KlFamilyRecognition
{
    /// <summary>
    /// How far a config's factor may be from the published one and still name that family: config.json writes
    /// them with four or five decimals, and a round trip through fp64 JSON and back to fp32 moves them ~1e-8.
    /// </summary>
    public const float FactorTolerance = 1e-4f;

    /// <summary>
    /// The first name part of SD3's MMDiT blocks in a full SD3 / SD3.5 checkpoint (FLUX.1's transformer has
    /// <c>double_blocks</c> / <c>single_blocks</c> instead): SD3's VAE comes with it under <c>first_stage_model.</c>.
    /// </summary>
    public const string Sd3TransformerMarker = "model.diffusion_model.joint_blocks.";

    /// <summary>The family of a config whose factors are the file's own.</summary>
    public static ModelFamily FromConfig(AutoencoderKlConfig config)
    {
        if (config.LatentBatchNorm) return ModelFamily.Flux2;
        if (AutoencoderKlConfigInference.Recognise(config) == ModelFamily.Flux)
        {
            var sd3 = AutoencoderKlConfig.Sd3;
            return Near(config.ScalingFactor, sd3.ScalingFactor) && Near(config.ShiftFactor ?? 0f, sd3.ShiftFactor!.Value)
                ? ModelFamily.Sd3
                : ModelFamily.Flux;
        }
        return Near(config.ScalingFactor, AutoencoderKlConfig.Sdxl.ScalingFactor) ? ModelFamily.Sdxl : ModelFamily.Sd;
    }

    /// <summary>The family of a structure inferred from tensors, given every tensor name in the file.</summary>
    public static ModelFamily FromTensors(AutoencoderKlConfig inferred, IEnumerable<string> storedNames)
    {
        var structural = AutoencoderKlConfigInference.Recognise(inferred);
        if (structural == ModelFamily.Flux && storedNames.Any(n => n.StartsWith(Sd3TransformerMarker, StringComparison.Ordinal)))
            return ModelFamily.Sd3;
        return structural;
    }

    private static bool Near(float actual, float published) => MathF.Abs(actual - published) <= FactorTolerance;
}
