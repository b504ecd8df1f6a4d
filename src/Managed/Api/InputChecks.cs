using NativeVae.Core;

namespace NativeVae.Api;

/// <summary>
/// Checks of a call's untrusted tensors before any work: values must be finite (a NaN latent would decode to a black
/// image without a word), and a decode's output must be within the pixel cap that encode's input is held to.
/// </summary>
internal static class InputChecks
{
    /// <exception cref="ArgumentException">some values are NaN or infinite; the message gives how many and where the first is.</exception>
    public static void RequireFinite(HostTensor<float> tensor, string what)
    {
        var data = tensor.Data;
        long first = -1, count = 0;
        for (long i = 0; i < data.LongLength; i++)
        {
            if (float.IsFinite(data[i])) continue;
            if (first < 0) first = i;
            count++;
        }
        if (count > 0)
            throw new ArgumentException(
                $"{what} {tensor.Shape}: {count} value(s) are NaN or infinite, the first ({data[first]}) at {Index(tensor.Shape, first)}");
    }

    /// <exception cref="ArgumentException">each decoded image would have more than <paramref name="maxPixels"/> pixels.</exception>
    public static void RequireDecodedSize(TensorShape latents, int factor, long maxPixels)
    {
        long height = (long)latents.H * factor, width = (long)latents.W * factor;
        if (height * width > maxPixels)
            throw new ArgumentException(
                $"latents {latents} decode to {width}x{height} = {height * width} pixels per image, over the limit of {maxPixels} (VaeOptions.MaxImagePixels)");
    }

    /// <summary>Images as a tensor: <c>[N, 3, H, W]</c>, each within the pixel cap named by <paramref name="limitName"/>.</summary>
    /// <exception cref="ArgumentException">another shape, or images over the cap.</exception>
    public static void RequireImages(TensorShape images, long maxPixels, string limitName)
    {
        if (images.Rank != 4 || images.C != OpShapes.RgbChannels) throw new ArgumentException($"images must be [N, 3, H, W], got {images}");
        RequireNonEmpty(images, "images");
        if ((long)images.H * images.W > maxPixels)
            throw new ArgumentException($"images {images}: {images.W}x{images.H} exceeds the limit of {maxPixels} pixels ({limitName})");
    }

    /// <summary>Latents, once unpacked (<paramref name="unpacked"/>), must be <c>[N, channels, h, w]</c>.</summary>
    /// <exception cref="ArgumentException">another shape; the message names the one given (<paramref name="given"/>).</exception>
    public static void RequireLatents(TensorShape unpacked, TensorShape given, int channels)
    {
        if (unpacked.Rank != 4 || unpacked.C != channels)
            throw new ArgumentException($"latents must be [N, {channels}, h, w] (or packed [N, seq, {channels * 4}]), got {given}");
        RequireNonEmpty(given, "latents");
    }

    /// <summary>Every dimension at least 1: an empty batch or image has nothing to run, and would fail deep inside.</summary>
    /// <exception cref="ArgumentException">a dimension is 0; the message names the tensor and the dimension.</exception>
    public static void RequireNonEmpty(TensorShape shape, string what)
    {
        for (int axis = 0; axis < shape.Rank; axis++)
            if (shape[axis] == 0) throw new ArgumentException($"{what} {shape}: dimension {axis} is 0; every dimension must be at least 1");
    }

    /// <summary>The multi-index of flat element <paramref name="flat"/>, as <c>[0, 2, 0, 5]</c>.</summary>
    private static string Index(TensorShape shape, long flat)
    {
        var index = new long[shape.Rank];
        for (int axis = shape.Rank - 1; axis >= 0; axis--)
        {
            index[axis] = flat % Math.Max(1, shape[axis]);
            flat /= Math.Max(1, shape[axis]);
        }
        return "[" + string.Join(", ", index) + "]";
    }
}
