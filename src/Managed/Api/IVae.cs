namespace NativeVae;

/// <summary>
/// Encode and decode with diffusers' <c>remote_encode</c> / <c>remote_decode</c> semantics, wherever the model runs:
/// in this process (<see cref="Vae"/>) or behind an endpoint. Images are <c>[N, 3, H, W]</c> in [-1, 1]; latents
/// <c>[N, C, H/f, W/f]</c>, or packed FLUX latents <c>[N, seq, 64]</c> for decode.
/// </summary>
public interface IVae : IDisposable
{
    /// <summary>The model family (sd, sdxl, flux, taesd, taesdxl, taef1, taef2).</summary>
    ModelFamily Family { get; }

    /// <summary>Channels of a latent.</summary>
    int LatentChannels { get; }

    /// <summary>Pixels per latent element along each axis (8 for every published VAE).</summary>
    int DownsampleFactor { get; }

    /// <summary>The family's published scaling factor; applied only when passed in the options.</summary>
    float? ScalingFactor { get; }

    /// <summary>The family's published shift factor, or null; applied only when passed in the options.</summary>
    float? ShiftFactor { get; }

    /// <summary>Encodes images <c>[N, 3, H, W]</c> in [-1, 1] to latents: <c>(z - shift) * scale</c>, each when given.</summary>
    /// <exception cref="ArgumentException">the tensor or an option is invalid; the message names it.</exception>
    Task<HostTensor<float>> EncodeAsync(HostTensor<float> images, EncodeOptions? options = null, CancellationToken cancellation = default);

    /// <summary>Encodes one image file (PNG, JPEG, WebP or BMP) to a latent <c>[1, C, H/f, W/f]</c>.</summary>
    /// <exception cref="InvalidDataException">the file is not an accepted image, is corrupt, or is over the pixel limit.</exception>
    Task<HostTensor<float>> EncodeAsync(string imagePath, EncodeOptions? options = null, CancellationToken cancellation = default);

    /// <summary>Decodes latents, computing <c>latents / scaling_factor + shift_factor</c> first (each when given).</summary>
    /// <exception cref="ArgumentException">the latents' shape does not fit the model, or an option is invalid.</exception>
    Task<DecodeResult> DecodeAsync(HostTensor<float> latents, DecodeOptions? options = null, CancellationToken cancellation = default);
}
