using NativeVae.Loading;
using NativeVae.Formats;
using System.Text.Json.Nodes;
using NativeVae.Models;
using NativeVae.Core;
using NativeVae.Weights;

namespace NativeVae;

/// <summary>
/// A VAE checkpoint opened read-only, without a device: what <c>nativevae info</c> prints and what
/// <c>nativevae convert</c> writes. Accepts every layout <see cref="Vae.Load"/> accepts (converted NativeVae file,
/// diffusers folder or single file, LDM, FLUX.1 <c>ae</c>, PyTorch <c>.pth</c>/<c>.ckpt</c>, TAESD folders).
/// The file stays mapped until <see cref="Dispose"/>.
/// </summary>
public sealed class VaeCheckpoint : IDisposable
{
    /// <summary><see cref="StorageDTypeName"/> when the tensors are not all stored in one dtype.</summary>
    public const string MixedDTypeName = "mixed";

    private readonly LoadedVae _loaded;

    private VaeCheckpoint(LoadedVae loaded) => _loaded = loaded;

    /// <summary>Opens a checkpoint file or folder and recognises its family.</summary>
    /// <param name="path">A file or a folder.</param>
    /// <param name="family">Overrides the family recognised from the config and tensors (e.g. an SD file read as SDXL).</param>
    /// <exception cref="FileNotFoundException">nothing at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">malformed or not a VAE; the message names the file and the tensor.</exception>
    public static VaeCheckpoint Open(string path, ModelFamily? family = null) =>
        new(VaeLoader.Open(path, new VaeLoadOptions(family)));

    /// <summary>The model family (sd, sdxl, flux, sd3, flux2, qwenimage, wan, wan22, taesd, taesdxl, taef1, taef2).</summary>
    public ModelFamily Family => _loaded.Family;

    /// <summary>The latent forms a <see cref="Vae"/> of this checkpoint gives and takes (see <see cref="Vae.SupportedLatentForms"/>).</summary>
    public IReadOnlyList<LatentForm> SupportedLatentForms =>
        _loaded.QwenConfig is not null ? Api.LatentForms.Supported(normalised: !_loaded.Family.IsVideo(), patchified: false)
        : Api.LatentForms.Supported(normalised: _loaded.KlConfig is { LatentBatchNorm: true }, patchified: true);

    /// <summary>Pixels per latent element along each axis (8 for every published VAE).</summary>
    public int DownsampleFactor => _loaded.KlConfig?.DownsampleFactor ?? _loaded.QwenConfig?.DownsampleFactor ?? _loaded.TinyConfig!.DownsampleFactor;

    /// <summary>Number of parameter tensors.</summary>
    public int TensorCount => _loaded.Parameters.Count;

    /// <summary>Number of scalar parameters (the sum of the tensors' element counts).</summary>
    public long ParameterCount => _loaded.ParameterCount;

    /// <summary>The tensors' storage dtype ("fp32", "fp16", "bf16"), or <see cref="MixedDTypeName"/>.</summary>
    public string StorageDTypeName => _loaded.StorageDTypeName;

    /// <summary>The storage dtype, or null when the tensors are stored in more than one dtype.</summary>
    public DType? StorageDType => StorageDTypeName == MixedDTypeName ? null : DTypeNames.Parse(StorageDTypeName);

    /// <summary>
    /// The model's config as a new JSON object with diffusers' key names (those of <c>AutoencoderKL</c> or
    /// <c>AutoencoderTiny</c>'s <c>config.json</c>); the caller may add keys to it.
    /// </summary>
    public JsonObject ConfigJson() => _loaded.ConfigJson();

    /// <summary>
    /// Writes the checkpoint as one NativeVae safetensors file (weights/README.md): diffusers' tensor names, the
    /// family and config in its metadata. The file appears whole or not at all (written beside it, then renamed).
    /// </summary>
    /// <param name="outputPath">The file to write; an existing file is replaced.</param>
    /// <param name="dtype">Storage dtype of the output; null keeps <see cref="StorageDType"/> (fp32 when mixed).</param>
    /// <returns>The dtype written.</returns>
    /// <exception cref="IOException">the output cannot be written.</exception>
    public DType Convert(string outputPath, DType? dtype = null)
    {
        var target = dtype ?? StorageDType ?? DType.F32;
        VaeConverter.Convert(_loaded, outputPath, target);
        return target;
    }

    /// <summary>Unmaps the checkpoint's files.</summary>
    public void Dispose() => _loaded.Dispose();
}
