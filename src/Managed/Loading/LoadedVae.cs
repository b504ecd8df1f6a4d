using NativeVae.Loading;
using NativeVae.Formats;
using System.Text.Json.Nodes;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Models.QwenImage;
using NativeVae.Models.Taesd;

namespace NativeVae.Loading;

/// <summary>
/// A VAE checkpoint opened by <see cref="VaeLoader"/>: its family, its config (exactly one of
/// <see cref="KlConfig"/> and <see cref="TinyConfig"/>), its canonical parameter list and the weights under
/// canonical names, validated against that list. Owns the open files.
/// </summary>
internal sealed class LoadedVae : IDisposable
{
    public LoadedVae(string origin, ModelFamily family, AutoencoderKlConfig? klConfig, TaesdConfig? tinyConfig,
        IReadOnlyList<(string Name, TensorShape Shape)> parameters, MappedWeightSource weights, QwenImageConfig? qwenConfig = null)
    {
        if ((klConfig is null ? 0 : 1) + (tinyConfig is null ? 0 : 1) + (qwenConfig is null ? 0 : 1) != 1)
            throw new ArgumentException("exactly one of the configs is given");
        QwenConfig = qwenConfig;
        Origin = origin;
        Family = family;
        KlConfig = klConfig;
        TinyConfig = tinyConfig;
        Parameters = parameters;
        Weights = weights;
    }

    public string Origin { get; }

    public ModelFamily Family { get; }

    public AutoencoderKlConfig? KlConfig { get; }

    public TaesdConfig? TinyConfig { get; }

    public QwenImageConfig? QwenConfig { get; }

    /// <summary>
    /// The latent scaling factor for this checkpoint, for every family: the AutoencoderKL config's (the file's
    /// own, or the family's published one), or the tiny family's (1, as diffusers' AutoencoderTiny config says:
    /// TAESD latents are already in their big VAE's scaled space). Null for FLUX.2, whose config has none: its
    /// pipeline normalises patchified latents with the VAE's batch-norm statistics instead.
    /// </summary>
    public float? ScalingFactor => QwenConfig is not null || KlConfig is { LatentBatchNorm: true } ? null : KlConfig?.ScalingFactor ?? TinyConfig!.ScalingFactor;

    /// <summary>The latent shift factor: the AutoencoderKL config's (null where the family has none, as SD and
    /// SDXL), or the tiny family's (0).</summary>
    public float? ShiftFactor => QwenConfig is not null ? null : KlConfig is not null ? KlConfig.ShiftFactor : TinyConfig!.ShiftFactor;

    /// <summary>Canonical names and shapes, in the order diffusers registers them.</summary>
    public IReadOnlyList<(string Name, TensorShape Shape)> Parameters { get; }

    public MappedWeightSource Weights { get; }

    /// <summary>Number of scalar parameters.</summary>
    public long ParameterCount => Parameters.Sum(p => p.Shape.ElementCount);

    /// <summary>Storage dtype of the weights as the CLI names it ("fp32", "fp16", "bf16"), or "mixed".</summary>
    public string StorageDTypeName
    {
        get
        {
            var dtypes = Parameters.Select(p => Weights.StoredDType(p.Name)).Distinct().ToList();
            return dtypes.Count == 1 ? DTypeNames.Name(dtypes[0]) : "mixed";
        }
    }

    /// <summary>The config with diffusers' key names (AutoencoderKL, AutoencoderKLFlux2, AutoencoderKLQwenImage, AutoencoderKLWan or AutoencoderTiny).</summary>
    public JsonObject ConfigJson() => KlConfig is not null ? AutoencoderKlConfigJson.ToJsonObject(KlConfig)
        : QwenConfig is not null ? QwenImageConfigJson.ToJsonObject(QwenConfig, Family.IsVideo() ? QwenImageConfigJson.WanClassName : QwenImageConfigJson.ClassName)
        : TaesdConfigJson.ToJsonObject(TinyConfig!);

    public void Dispose() => Weights.Dispose();
}
