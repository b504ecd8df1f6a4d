using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae.Imaging;

/// <summary>
/// An 8-bit RGB image, interleaved <c>[H, W, 3]</c>, decoded from PNG, JPEG, WebP or BMP only (no other
/// ImageSharp decoder is registered), with a pixel cap checked from the header before pixels are decoded.
/// </summary>
internal sealed class RgbImage
{
    /// <summary>The remote API's largest accepted image, 2048 x 2048, with room for a 4096 x 4096 upload.</summary>
    public const long DefaultMaxPixels = 4096L * 4096;

    public const int Channels = 3;

    public RgbImage(int width, int height, byte[] pixels)
    {
        if (pixels.LongLength != (long)width * height * Channels)
            throw new ArgumentException($"{pixels.Length} bytes for a {width}x{height} RGB image");
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Row-major RGB bytes, <c>[H, W, 3]</c>.</summary>
    public byte[] Pixels { get; }

    private static readonly Configuration DecoderConfiguration = new(
        new PngConfigurationModule(), new JpegConfigurationModule(), new WebpConfigurationModule(), new BmpConfigurationModule());

    /// <exception cref="InvalidDataException">not a PNG/JPEG/WebP/BMP, corrupt or truncated, or over the pixel cap.</exception>
    public static RgbImage Load(string path, long maxPixels = DefaultMaxPixels)
    {
        try
        {
            using var stream = File.OpenRead(path);
            var info = Image.Identify(DecoderConfiguration, stream)
                ?? throw new InvalidDataException($"{path}: not a PNG, JPEG, WebP or BMP image");
            if ((long)info.Width * info.Height > maxPixels)
                throw new InvalidDataException($"{path}: {info.Width}x{info.Height} image exceeds the {maxPixels}-pixel cap");
            stream.Position = 0;
            using var image = Image.Load<Rgb24>(DecoderConfiguration, stream);
            var pixels = new byte[(long)image.Width * image.Height * Channels];
            image.CopyPixelDataTo(pixels);
            return new RgbImage(image.Width, image.Height, pixels);
        }
        catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException or ImageFormatException)
        {
            throw new InvalidDataException($"{path}: cannot decode image ({e.Message})");
        }
    }

    /// <summary>A copy of a rectangle.</summary>
    public RgbImage Crop(int x, int y, int width, int height)
    {
        if (x < 0 || y < 0 || width <= 0 || height <= 0 || x + width > Width || y + height > Height)
            throw new ArgumentOutOfRangeException(nameof(width), $"crop {width}x{height} at ({x}, {y}) is outside the {Width}x{Height} image");
        var pixels = new byte[(long)width * height * Channels];
        for (int row = 0; row < height; row++)
            Pixels.AsSpan(((y + row) * Width + x) * Channels, width * Channels).CopyTo(pixels.AsSpan(row * width * Channels));
        return new RgbImage(width, height, pixels);
    }
}
