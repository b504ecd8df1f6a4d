using NativeVae.Core;

namespace NativeVae.Api;

/// <summary>
/// Frames of a video tensor <c>[N, C, T, H, W]</c> as the image tensors <c>[N, C, H, W]</c> the model runs on, and
/// back: frame t of every batch item.
/// </summary>
internal static class VideoFrames
{
    /// <summary>The axis of frames in a video tensor.</summary>
    public const int FrameAxis = 2;

    /// <summary>The rank of a video tensor.</summary>
    public const int Rank = 5;

    /// <summary>The shape of one frame of <paramref name="video"/>: <c>[N, C, H, W]</c>.</summary>
    public static TensorShape FrameShape(TensorShape video) => new(video[0], video[1], video[3], video[4]);

    /// <summary>Copies frame <paramref name="t"/> of <paramref name="video"/> into <paramref name="frame"/> (<c>[N, C, H, W]</c>).</summary>
    public static void Read(HostTensor<float> video, int t, Span<float> frame)
    {
        for (int p = 0; p < Planes(video.Shape); p++)
        {
            var (inVideo, inFrame, length) = Plane(video.Shape, t, p);
            video.Data.AsSpan(inVideo, length).CopyTo(frame.Slice(inFrame, length));
        }
    }

    /// <summary>Copies <paramref name="frame"/> (<c>[N, C, H, W]</c>) into frame <paramref name="t"/> of <paramref name="video"/>.</summary>
    public static void Write(HostTensor<float> video, int t, ReadOnlySpan<float> frame)
    {
        for (int p = 0; p < Planes(video.Shape); p++)
        {
            var (inVideo, inFrame, length) = Plane(video.Shape, t, p);
            frame.Slice(inFrame, length).CopyTo(video.Data.AsSpan(inVideo, length));
        }
    }

    /// <summary>
    /// Each frame of each video of <paramref name="video"/> <c>[N, 3, T, H, W]</c> in [-1, 1] as interleaved 8-bit RGB
    /// <c>[H, W, 3]</c> (diffusers' postprocess), handed to <paramref name="take"/> with its item and frame, in that
    /// order; the buffer is reused between calls.
    /// </summary>
    public static void ForEachRgbFrame(HostTensor<float> video, Action<int, int, byte[]> take)
    {
        var s = video.Shape;
        int frames = s[FrameAxis], plane = s[3] * s[4];
        var planes = new float[OpShapes.RgbChannels * plane];
        var rgb = new byte[planes.Length];
        for (int n = 0; n < s[0]; n++)
        for (int t = 0; t < frames; t++)
        {
            for (int c = 0; c < OpShapes.RgbChannels; c++)
                video.Data.AsSpan(checked((int)((((long)n * s[1] + c) * frames + t) * plane)), plane).CopyTo(planes.AsSpan(c * plane, plane));
            PixelConversion.ToInterleaved(planes, rgb);
            take(n, t, rgb);
        }
    }

    /// <summary>Planes per frame: one per batch item and channel.</summary>
    private static int Planes(TensorShape video) => video[0] * video[1];

    /// <summary>Where plane <paramref name="p"/> of frame <paramref name="t"/> lies in the video and in the frame.</summary>
    private static (int InVideo, int InFrame, int Length) Plane(TensorShape video, int t, int p)
    {
        int frames = video[FrameAxis], plane = video[3] * video[4];
        return (checked((p * frames + t) * plane), checked(p * plane), plane);
    }
}
