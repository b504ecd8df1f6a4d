namespace NativeVae.Models;

/// <summary>
/// How a pipeline normalises its 2x2-patchified latent: <c>(p - Mean[k]) / Std[k]</c> for each of the
/// <c>4 x latent</c> patched channels <c>k = 4c + 2dy + dx</c>. FLUX.2 reads it from its VAE's <c>bn</c> buffers
/// (<c>Std = sqrt(running_var + batch_norm_eps)</c>); Qwen-Image from its config's per-latent-channel
/// <c>latents_mean</c> / <c>latents_std</c>, repeated over each channel's four patch positions.
/// </summary>
/// <param name="HasPatchifiedForm">the pipeline also hands out the normalised patches as channels (FLUX.2), not only as tokens.</param>
internal sealed record LatentNormalization(float[] Mean, float[] Std, bool HasPatchifiedForm)
{
    private const int PatchArea = 4;

    /// <summary>From running statistics: <c>Std = sqrt(variance + eps)</c>, in double as torch rounds it once.</summary>
    public static LatentNormalization FromBatchNorm(float[] mean, float[] variance, float eps, string origin)
    {
        if (mean.Length != variance.Length)
            throw new InvalidDataException($"{origin}: bn.running_mean has {mean.Length} values, bn.running_var {variance.Length}");
        var std = new float[variance.Length];
        for (int k = 0; k < std.Length; k++)
        {
            if (!float.IsFinite(mean[k]) || !float.IsFinite(variance[k]) || variance[k] + eps <= 0)
                throw new InvalidDataException($"{origin}: bn channel {k} has mean {mean[k]} and variance {variance[k]}; the pipeline needs finite values and variance + eps > 0");
            std[k] = MathF.Sqrt(variance[k] + eps);
        }
        return new LatentNormalization(mean, std, HasPatchifiedForm: true);
    }

    /// <summary>From per-latent-channel statistics, each repeated over its channel's four patch positions.</summary>
    public static LatentNormalization PerLatentChannel(IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        var patchedMean = new float[PatchArea * mean.Count];
        var patchedStd = new float[PatchArea * std.Count];
        for (int k = 0; k < patchedMean.Length; k++)
        {
            patchedMean[k] = mean[k / PatchArea];
            patchedStd[k] = std[k / PatchArea];
        }
        return new LatentNormalization(patchedMean, patchedStd, HasPatchifiedForm: false);
    }
}
