using NativeVae.Core;

namespace NativeVae.Api;

/// <summary>8-bit RGB frames to the API's planes in [-1, 1] and back, on the host (video files and frame folders).</summary>
internal static class PixelConversion
{
    private const float PixelMax = 255f;

    /// <summary>Interleaved RGB bytes [H, W, 3] to planes [3, H, W] in [-1, 1].</summary>
    public static void ToPlanes(ReadOnlySpan<byte> rgb, Span<float> planes)
    {
        int pixels = rgb.Length / OpShapes.RgbChannels;
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < OpShapes.RgbChannels; c++)
                planes[c * pixels + i] = rgb[i * OpShapes.RgbChannels + c] / PixelMax * 2f - 1f;
    }

    /// <summary>Planes [3, H, W] in [-1, 1] to interleaved RGB bytes, as diffusers' postprocess: (x / 2 + 0.5) clamped, x 255, rounded.</summary>
    public static void ToInterleaved(ReadOnlySpan<float> planes, Span<byte> rgb)
    {
        int pixels = planes.Length / OpShapes.RgbChannels;
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < OpShapes.RgbChannels; c++)
                rgb[i * OpShapes.RgbChannels + c] = (byte)MathF.Round(Math.Clamp(planes[c * pixels + i] / 2f + 0.5f, 0f, 1f) * PixelMax);
    }
}
