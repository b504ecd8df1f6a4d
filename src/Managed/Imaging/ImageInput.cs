using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace NativeVae.Imaging;

/// <summary>
/// Untrusted image input: only PNG, JPEG, WebP and BMP are decoded, the pixel count is checked from the header
/// before any pixel is decoded, and every failure names the source. Output is RGB (alpha dropped, grayscale
/// expanded), as diffusers' image processor feeds the VAE.
/// </summary>
internal static class ImageInput
{
    /// <summary>Default cap on decoded pixels: 4096 x 4096.</summary>
    public const long DefaultMaxPixels = 4096L * 4096;

    /// <summary>A configuration that knows only the four accepted formats.</summary>
    private static readonly Configuration Formats = new(
        new PngConfigurationModule(), new JpegConfigurationModule(), new WebpConfigurationModule(), new BmpConfigurationModule());

    public static Image<Rgb24> Load(string path, long maxPixels = DefaultMaxPixels)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such image file", path);
        using var stream = File.OpenRead(path);
        return Load(stream, path, maxPixels);
    }

    /// <param name="name">Names the source in error messages.</param>
    public static Image<Rgb24> Load(Stream stream, string name, long maxPixels = DefaultMaxPixels)
    {
        ArgumentNullException.ThrowIfNull(stream);
        // Identify reads the header only; the stream must be rewound for the real decode.
        Stream seekable = stream.CanSeek ? stream : CopyToMemory(stream);
        long start = seekable.Position;
        try
        {
            var info = Image.Identify(Formats, seekable)
                       ?? throw new InvalidDataException($"{name}: not a PNG, JPEG, WebP or BMP image");
            long pixels = (long)info.Width * info.Height;
            if (pixels > maxPixels)
                throw new InvalidDataException($"{name}: {info.Width}x{info.Height} = {pixels} pixels exceeds the limit of {maxPixels}");
            seekable.Position = start;
            return Image.Load<Rgb24>(Formats, seekable);
        }
        catch (UnknownImageFormatException)
        {
            throw new InvalidDataException($"{name}: not a PNG, JPEG, WebP or BMP image");
        }
        catch (Exception e) when (e is InvalidImageContentException or ImageFormatException or NotSupportedException or EndOfStreamException)
        {
            throw new InvalidDataException($"{name}: corrupt or truncated image ({e.Message})");
        }
        finally
        {
            if (!ReferenceEquals(seekable, stream)) seekable.Dispose();
        }
    }

    /// <summary>An image of any pixel type as RGB; the caller owns the result.</summary>
    public static Image<Rgb24> ToRgb(Image image) => image as Image<Rgb24> is { } rgb ? rgb.Clone() : image.CloneAs<Rgb24>();

    /// <summary>
    /// diffusers' <c>VaeImageProcessor</c> with its defaults: a size that is not a multiple of
    /// <paramref name="multiple"/> is resized (Lanczos, not cropped) down to the nearest multiple in each dimension.
    /// Returns the input itself when it already fits.
    /// </summary>
    public static Image<Rgb24> ResizeToMultiple(Image<Rgb24> image, int multiple)
    {
        int width = image.Width - image.Width % multiple, height = image.Height - image.Height % multiple;
        if (width == 0 || height == 0)
            throw new ArgumentException($"image {image.Width}x{image.Height} is smaller than {multiple} pixels in a dimension");
        if (width == image.Width && height == image.Height) return image;
        return image.Clone(ctx => ctx.Resize(width, height, KnownResamplers.Lanczos3));
    }

    /// <summary>Interleaved RGB bytes [H, W, 3] of one image.</summary>
    public static byte[] ToBytes(Image<Rgb24> image)
    {
        var bytes = new byte[checked(image.Width * image.Height * 3)];
        image.CopyPixelDataTo(bytes);
        return bytes;
    }

    private static MemoryStream CopyToMemory(Stream stream)
    {
        var memory = new MemoryStream();
        stream.CopyTo(memory);
        memory.Position = 0;
        return memory;
    }
}
