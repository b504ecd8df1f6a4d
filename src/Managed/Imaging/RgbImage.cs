namespace NativeVae.Imaging;

/// <summary>
/// An 8-bit RGB image, interleaved <c>[H, W, 3]</c>, decoded from PNG, JPEG, WebP or BMP only (no other
/// ImageSharp decoder is registered), with a pixel cap checked from the header before pixels are decoded.
/// </summary>
internal sealed class RgbImage
{
    public const long DefaultMaxPixels = ImageInput.DefaultMaxPixels;

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

    /// <exception cref="InvalidDataException">not a PNG/JPEG/WebP/BMP, corrupt or truncated, or over the pixel cap.</exception>
    public static RgbImage Load(string path, long maxPixels = DefaultMaxPixels)
    {
        using var image = ImageInput.Load(path, maxPixels);
        return new RgbImage(image.Width, image.Height, ImageInput.ToBytes(image));
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
