namespace NativeVae;

/// <summary>
/// The shape a latent travels in. Encode returns <see cref="Raw"/> unless asked; decode recognises the form from
/// the tensor's shape. The pipeline forms are what diffusers' FLUX.2 and Qwen-Image pipelines hand their
/// transformers: 2x2 patches of the raw latent (channel <c>4c + 2dy + dx</c>), normalised per patched channel with
/// the model's own statistics (FLUX.2: its VAE's <c>bn</c> running mean and variance; Qwen-Image: its config's
/// latents_mean and latents_std).
/// </summary>
public enum LatentForm
{
    /// <summary>The VAE's own latent (the mode): <c>[N, C, H/8, W/8]</c>; scaling and shift factors apply to it.</summary>
    Raw,

    /// <summary>FLUX.2's normalised 2x2 patches as channels: <c>[N, 4C, H/16, W/16]</c> (128 channels).</summary>
    Patchified,

    /// <summary>
    /// The normalised patches as tokens, row-major: <c>[N, (H/16)(W/16), 4C]</c>. Decode needs the image's height
    /// and width, as for FLUX.1's packed latents.
    /// </summary>
    Packed,
}

/// <summary>Names of <see cref="LatentForm"/> values.</summary>
public static class LatentFormNames
{
    /// <summary>The form's name as the CLI, the server and <c>info</c> spell it: raw, patchified, packed.</summary>
    public static string Name(this LatentForm form) => form.ToString().ToLowerInvariant();
}
