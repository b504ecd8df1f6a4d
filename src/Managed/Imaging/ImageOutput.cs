using NativeVae.Core;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae.Imaging;

/// <summary>RGB bytes to ImageSharp images and encoded files.</summary>
internal static class ImageOutput
{
    /// <summary>The quality the diffusers endpoints' PIL default gives (75).</summary>
    public const int DefaultJpegQuality = 75;

    public static Image<Rgb24> FromBytes(ReadOnlySpan<byte> rgb, int width, int height) =>
        Image.LoadPixelData<Rgb24>(rgb, width, height);

    /// <summary>
    /// One image per item of interleaved RGB bytes <c>[N, H, W, 3]</c>: the one conversion of 8-bit pixels to images,
    /// shared by the local decode and the remote client so that both give the same images. The caller owns them.
    /// </summary>
    public static List<Image<Rgb24>> FromBatch(ReadOnlySpan<byte> rgb, int count, int height, int width)
    {
        int imageBytes = checked(height * width * OpShapes.RgbChannels);
        if (rgb.Length != (long)imageBytes * count)
            throw new ArgumentException($"{rgb.Length} RGB bytes are not {count} images of {width}x{height}");
        var images = new List<Image<Rgb24>>(count);
        for (int n = 0; n < count; n++) images.Add(FromBytes(rgb.Slice(n * imageBytes, imageBytes), width, height));
        return images;
    }

    public static byte[] Encode(Image<Rgb24> image, ImageFormat format, int jpegQuality = DefaultJpegQuality)
    {
        using var memory = new MemoryStream();
        if (format == ImageFormat.Png) image.Save(memory, new PngEncoder());
        else image.Save(memory, new JpegEncoder { Quality = jpegQuality });
        return memory.ToArray();
    }

    /// <summary>Writes an image to a file atomically (temporary file, then rename), format from the extension.</summary>
    public static void Save(Image<Rgb24> image, string path, int jpegQuality = DefaultJpegQuality)
    {
        string extension = Path.GetExtension(path).ToLowerInvariant();
        var format = extension switch
        {
            ".png" => ImageFormat.Png,
            ".jpg" or ".jpeg" => ImageFormat.Jpeg,
            _ => throw new ArgumentException($"{path}: output images must be .png, .jpg or .jpeg"),
        };
        byte[] bytes = Encode(image, format, jpegQuality);
        string temp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            File.WriteAllBytes(temp, bytes);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}
