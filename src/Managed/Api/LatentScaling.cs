namespace NativeVae.Api;

/// <summary>
/// diffusers' remote protocol scaling, each factor applied only when given:
/// encode returns <c>(z - shift_factor) * scaling_factor</c>; decode computes <c>latents / scaling_factor + shift_factor</c>.
/// </summary>
internal static class LatentScaling
{
    public static void AfterEncode(Span<float> z, float? scalingFactor, float? shiftFactor)
    {
        CheckFactor(scalingFactor, "scaling_factor");
        CheckFactor(shiftFactor, "shift_factor");
        float shift = shiftFactor ?? 0f;
        float scale = scalingFactor ?? 1f;
        if (scalingFactor is null && shiftFactor is null) return;
        for (int i = 0; i < z.Length; i++) z[i] = (z[i] - shift) * scale;
    }

    public static void BeforeDecode(Span<float> latents, float? scalingFactor, float? shiftFactor)
    {
        CheckFactor(scalingFactor, "scaling_factor");
        CheckFactor(shiftFactor, "shift_factor");
        if (scalingFactor == 0f) throw new ArgumentException("scaling_factor must not be 0: decode divides by it", nameof(scalingFactor));
        if (scalingFactor is null && shiftFactor is null) return;
        float scale = scalingFactor ?? 1f;
        float shift = shiftFactor ?? 0f;
        for (int i = 0; i < latents.Length; i++) latents[i] = latents[i] / scale + shift;
    }

    private static void CheckFactor(float? factor, string name)
    {
        if (factor is { } f && !float.IsFinite(f)) throw new ArgumentException($"{name} {f} is not a finite number", name);
    }
}
