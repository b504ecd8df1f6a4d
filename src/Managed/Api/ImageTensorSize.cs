using NativeVae.Core;

namespace NativeVae.Api;

/// <summary>
/// The one size rule for images, given as files or as tensors: each side is brought down to a multiple of the
/// model's factor, as diffusers' VaeImageProcessor does (files with Lanczos, see <see cref="Imaging.ImageInput.ResizeToMultiple"/>;
/// tensors with <c>torch.nn.functional.interpolate</c>'s default nearest-neighbour), and a side shorter than the
/// factor is refused.
/// </summary>
internal static class ImageTensorSize
{
    /// <summary>The shape <paramref name="images"/> <c>[N, 3, H, W]</c> is encoded at.</summary>
    /// <exception cref="ArgumentException">a side is shorter than <paramref name="factor"/>.</exception>
    public static TensorShape AtMultiple(TensorShape images, int factor)
    {
        if (images.H < factor || images.W < factor)
            throw new ArgumentException(
                $"images {images}: {images.W}x{images.H} is smaller than {factor} pixels in a dimension (the model's downsampling factor)");
        return TensorShape.Nchw(images.N, images.C, images.H - images.H % factor, images.W - images.W % factor);
    }

    /// <summary>
    /// <paramref name="images"/> resized down to <see cref="AtMultiple"/> by nearest neighbour, as torch's
    /// <c>interpolate(mode="nearest")</c> picks source rows and columns (<c>floor(dst * in / out)</c> with a float
    /// scale); the tensor itself when its sides are multiples already.
    /// </summary>
    public static HostTensor<float> ResizeToMultiple(HostTensor<float> images, int factor)
    {
        var s = images.Shape;
        var target = AtMultiple(s, factor);
        if (target == s) return images;
        int[] rows = SourceIndices(s.H, target.H), columns = SourceIndices(s.W, target.W);
        var resized = new HostTensor<float>(target);
        long planes = (long)s.N * s.C;
        for (long plane = 0; plane < planes; plane++)
        {
            var source = images.Data.AsSpan(checked((int)(plane * s.H * s.W)), s.H * s.W);
            var destination = resized.Data.AsSpan(checked((int)(plane * target.H * target.W)), target.H * target.W);
            for (int y = 0; y < target.H; y++)
            {
                var row = source.Slice(rows[y] * s.W, s.W);
                var output = destination.Slice(y * target.W, target.W);
                for (int x = 0; x < target.W; x++) output[x] = row[columns[x]];
            }
        }
        return resized;
    }

    private static int[] SourceIndices(int inputSize, int outputSize)
    {
        float scale = (float)inputSize / outputSize;
        var indices = new int[outputSize];
        for (int i = 0; i < outputSize; i++) indices[i] = Math.Min((int)MathF.Floor(i * scale), inputSize - 1);
        return indices;
    }
}
