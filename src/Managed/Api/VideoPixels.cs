using NativeVae.Api;
using NativeVae.Core;

namespace NativeVae;

/// <summary>Decoded videos as 8-bit pixels, as diffusers' postprocess makes images of them.</summary>
public static class VideoPixels
{
    /// <summary>
    /// A video <c>[N, 3, T, H, W]</c> in [-1, 1] to uint8 <c>[N, T, H, W, 3]</c>, each value
    /// <c>round(clamp(x / 2 + 0.5, 0, 1) * 255)</c>: every frame as the image decode's uint8 tensor lays out an image
    /// (the video endpoint's <c>pt</c> reply with <c>partial_postprocess</c>).
    /// </summary>
    /// <exception cref="ArgumentException">not a 3-channel video.</exception>
    public static HostTensor<byte> ToUInt8(HostTensor<float> video)
    {
        ArgumentNullException.ThrowIfNull(video);
        var s = video.Shape;
        if (s.Rank != VideoFrames.Rank || s[1] != OpShapes.RgbChannels)
            throw new ArgumentException($"video must be [N, 3, T, H, W], got {s}", nameof(video));
        int frames = s[VideoFrames.FrameAxis];
        var pixels = new HostTensor<byte>(new TensorShape(s[0], frames, s[3], s[4], OpShapes.RgbChannels));
        VideoFrames.ForEachRgbFrame(video, (n, t, rgb) => rgb.CopyTo(pixels.Data.AsSpan(checked((int)(((long)n * frames + t) * rgb.Length)), rgb.Length)));
        return pixels;
    }
}
