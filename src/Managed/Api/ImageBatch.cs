using NativeVae.Core;
using NativeVae.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae.Api;

/// <summary>
/// Images of one size as interleaved 8-bit RGB <c>[N, H, W, 3]</c>, ready for <see cref="IBackend.ImageToTensor"/>:
/// each converted to RGB and resized down to a multiple of the model's factor, as diffusers' VaeImageProcessor does.
/// </summary>
internal sealed record ImageBatch(byte[] Rgb, int Count, int Height, int Width)
{
    /// <exception cref="ArgumentException">no images, a null image, an image over <paramref name="maxPixels"/>, or sizes that differ.</exception>
    public static ImageBatch From(IReadOnlyList<Image> images, int multiple, long maxPixels)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("no images to encode");
        byte[]? all = null;
        int height = 0, width = 0;
        for (int i = 0; i < images.Count; i++)
        {
            var source = images[i] ?? throw new ArgumentException($"image {i} is null");
            if ((long)source.Width * source.Height > maxPixels)
                throw new ArgumentException($"image {i}: {source.Width}x{source.Height} exceeds the limit of {maxPixels} pixels");
            using var rgb = ImageInput.ToRgb(source);
            var sized = ImageInput.ResizeToMultiple(rgb, multiple);
            try
            {
                if (i == 0)
                {
                    (height, width) = (sized.Height, sized.Width);
                    all = new byte[checked((long)images.Count * height * width * OpShapes.RgbChannels)];
                }
                else if (sized.Height != height || sized.Width != width)
                    throw new ArgumentException($"image {i} is {sized.Width}x{sized.Height} after resizing, image 0 is {width}x{height}: a batch needs one size");
                int bytes = height * width * OpShapes.RgbChannels;
                sized.CopyPixelDataTo(all.AsSpan(i * bytes, bytes));
            }
            finally
            {
                if (!ReferenceEquals(sized, rgb)) sized.Dispose();
            }
        }
        return new ImageBatch(all!, images.Count, height, width);
    }

    public TensorShape Shape => TensorShape.Nchw(Count, OpShapes.RgbChannels, Height, Width);
}
