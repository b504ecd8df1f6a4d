using NativeVae.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae;

/// <summary>
/// The image files the VAE reads and writes, handled as <see cref="Vae"/> handles them: untrusted input decoded
/// only from PNG, JPEG, WebP or BMP with the pixel count checked before decoding, RGB output written atomically.
/// </summary>
public static class ImageFiles
{
    /// <summary>The default cap on decoded pixels (4096 x 4096), also <see cref="VaeOptions.MaxImagePixels"/>'s default.</summary>
    public const long DefaultMaxPixels = ImageInput.DefaultMaxPixels;

    /// <summary>The JPEG quality written when none is given (75, PIL's default, as diffusers' endpoints).</summary>
    public const int DefaultJpegQuality = ImageOutput.DefaultJpegQuality;

    /// <summary>Loads an image file as RGB (alpha dropped, grayscale expanded); the caller disposes it.</summary>
    /// <param name="path">A PNG, JPEG, WebP or BMP file.</param>
    /// <param name="maxPixels">Refuse images of more pixels (width times height), checked from the header.</param>
    /// <exception cref="FileNotFoundException">no file at <paramref name="path"/>.</exception>
    /// <exception cref="InvalidDataException">not an accepted format, corrupt, or over <paramref name="maxPixels"/>.</exception>
    public static Image<Rgb24> Load(string path, long maxPixels = DefaultMaxPixels) => ImageInput.Load(path, maxPixels);

    /// <summary>
    /// The image as the encoder sees it: resized (Lanczos, as diffusers' <c>VaeImageProcessor</c>) down to the nearest
    /// multiple of <paramref name="multiple"/> in each dimension. Always a new image; the caller disposes it.
    /// </summary>
    /// <param name="image">The loaded image (not disposed).</param>
    /// <param name="multiple">The model's downsampling factor (<see cref="Vae.DownsampleFactor"/>).</param>
    /// <exception cref="ArgumentException">the image is smaller than <paramref name="multiple"/> in a dimension.</exception>
    public static Image<Rgb24> ResizeToMultiple(Image<Rgb24> image, int multiple)
    {
        var resized = ImageInput.ResizeToMultiple(image, multiple);
        return ReferenceEquals(resized, image) ? image.Clone() : resized;
    }

    /// <summary>Writes an image atomically (temporary file, then rename); the format follows the extension.</summary>
    /// <param name="image">The image to write.</param>
    /// <param name="path">A <c>.png</c>, <c>.jpg</c> or <c>.jpeg</c> file.</param>
    /// <param name="jpegQuality">JPEG quality, 1 to 100.</param>
    /// <exception cref="ArgumentException">the extension is not one of the three.</exception>
    public static void Save(Image<Rgb24> image, string path, int jpegQuality = DefaultJpegQuality) =>
        ImageOutput.Save(image, path, jpegQuality);

    /// <summary>Whether <see cref="Save"/> writes a file of this name (a <c>.png</c>, <c>.jpg</c> or <c>.jpeg</c> extension).</summary>
    public static bool IsOutputImagePath(string path) =>
        Path.GetExtension(path).ToLowerInvariant() is ".png" or ".jpg" or ".jpeg";

    /// <summary>PSNR in dB between two image or video tensors of one shape in [-1, 1] (clamped to it; infinity when equal).</summary>
    /// <exception cref="ArgumentException">the shapes differ.</exception>
    public static double Psnr(HostTensor<float> a, HostTensor<float> b)
    {
        if (a.Shape != b.Shape) throw new ArgumentException($"PSNR of tensors {a.Shape} and {b.Shape}");
        return ImageMetrics.Psnr(a.Data, b.Data);
    }

    /// <summary>Peak signal-to-noise ratio in dB over the RGB bytes of two images of one size (infinity when equal).</summary>
    /// <param name="a">One image.</param>
    /// <param name="b">The other, of the same width and height.</param>
    /// <exception cref="ArgumentException">the images differ in size.</exception>
    public static double Psnr(Image<Rgb24> a, Image<Rgb24> b)
    {
        if (a.Width != b.Width || a.Height != b.Height)
            throw new ArgumentException($"PSNR of a {a.Width}x{a.Height} and a {b.Width}x{b.Height} image");
        return ImageMetrics.Psnr(ImageInput.ToBytes(a), ImageInput.ToBytes(b));
    }
}
