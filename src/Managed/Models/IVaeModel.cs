using NativeVae.Core;

namespace NativeVae.Models;

/// <summary>Receives a named intermediate (e.g. "encoder.down_blocks.1"); it must not keep or dispose the tensor.</summary>
internal delegate void BlockObserver(string name, Tensor output);

/// <summary>Pixel range a model's images live in.</summary>
internal enum ImageRange
{
    /// <summary>[-1, 1]: AutoencoderKL.</summary>
    MinusOneToOne,

    /// <summary>[0, 1]: the TAESD family.</summary>
    ZeroToOne,
}

/// <summary>
/// What the API needs of a VAE, whatever its architecture. Encode and decode run their ops on
/// the <c>ops</c> backend they are given (the model's own, or a tiling backend wrapping it); parameters stay on the
/// model's backend.
/// </summary>
internal interface IVaeModel : IDisposable
{
    IBackend Backend { get; }

    int LatentChannels { get; }

    /// <summary>Pixels per latent element along each axis (8 for every published VAE).</summary>
    int DownsampleFactor { get; }

    /// <summary>diffusers' sample_size: the pixel tile of diffusers-style blend tiling.</summary>
    int SampleSize { get; }

    ImageRange ImageRange { get; }

    /// <summary>True when encode returns moments (mean, logvar) [N, 2C, h, w] rather than the latent itself.</summary>
    bool EncodesMoments { get; }

    /// <summary>
    /// True for the TAESD family: blend tiling then follows diffusers' AutoencoderTiny (its own overlap and masks)
    /// rather than AutoencoderKL.
    /// </summary>
    bool IsTiny { get; }

    /// <summary>
    /// The pipeline's normalisation of the 2x2-patchified latent (FLUX.2's <c>bn</c>, Qwen-Image's
    /// latents_mean/std), or null where the family's pipeline packs raw latents or none.
    /// </summary>
    LatentNormalization? PipelineNormalization => null;

    /// <summary>
    /// True for a video VAE run on one frame (Qwen-Image): its latents carry a frame axis of 1 at the API,
    /// <c>[N, C, 1, h, w]</c>, while the model runs on <c>[N, C, h, w]</c>.
    /// </summary>
    bool HasFrameAxis => false;

    Tensor Encode(IBackend ops, Tensor image, BlockObserver? observe = null);

    Tensor Decode(IBackend ops, Tensor latent, BlockObserver? observe = null);

    /// <summary>
    /// Whether <see cref="Decode"/> ends by clamping to [-1, 1] (diffusers' Wan and Qwen-Image <c>_decode</c>). A caller
    /// that combines several decodes, as blend tiling does, combines <see cref="DecodeUnclamped"/> and clamps the
    /// result, as diffusers' tiled_decode does.
    /// </summary>
    bool ClampsDecode => false;

    /// <summary><see cref="Decode"/> without its final clamp: the same where <see cref="ClampsDecode"/> is false.</summary>
    Tensor DecodeUnclamped(IBackend ops, Tensor latent, BlockObserver? observe = null) => Decode(ops, latent, observe);
}
