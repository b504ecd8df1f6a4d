namespace NativeVae.Api;

/// <summary>
/// diffusers' remote protocol scaling, each factor applied only when given:
/// encode returns <c>(z - shift_factor) * scaling_factor</c>; decode computes <c>latents / scaling_factor + shift_factor</c>.
/// </summary>
internal static class LatentScaling
{
    /// <summary>Encode's scaling on host values (a sampled latent, drawn on the host).</summary>
    public static void AfterEncode(Span<float> z, float? scalingFactor, float? shiftFactor)
    {
        CheckFactor(scalingFactor, "scaling_factor");
        CheckFactor(shiftFactor, "shift_factor");
        float shift = shiftFactor ?? 0f;
        float scale = scalingFactor ?? 1f;
        if (scalingFactor is null && shiftFactor is null) return;
        for (int i = 0; i < z.Length; i++) z[i] = (z[i] - shift) * scale;
    }

    /// <summary>
    /// Encode's <c>(z - shift) * scale</c> as one <c>z * a + b</c> for the backend's ScaleShift, or null when neither
    /// factor is given (nothing to run).
    /// </summary>
    public static (float Scale, float Shift)? EncodeAffine(float? scalingFactor, float? shiftFactor)
    {
        CheckFactor(scalingFactor, "scaling_factor");
        CheckFactor(shiftFactor, "shift_factor");
        if (scalingFactor is null && shiftFactor is null) return null;
        float scale = scalingFactor ?? 1f;
        return (scale, -(shiftFactor ?? 0f) * scale);
    }

    /// <summary>Decode's <c>latents / scale + shift</c> as one <c>x * a + b</c>, or null when neither factor is given.</summary>
    public static (float Scale, float Shift)? DecodeAffine(float? scalingFactor, float? shiftFactor)
    {
        CheckFactor(scalingFactor, "scaling_factor");
        CheckFactor(shiftFactor, "shift_factor");
        if (scalingFactor == 0f) throw new ArgumentException("scaling_factor must not be 0: decode divides by it");
        if (scalingFactor is null && shiftFactor is null) return null;
        return (1f / (scalingFactor ?? 1f), shiftFactor ?? 0f);
    }

    private static void CheckFactor(float? factor, string name)
    {
        if (factor is { } f && !float.IsFinite(f)) throw new ArgumentException($"{name} {f} is not a finite number");
    }
}
