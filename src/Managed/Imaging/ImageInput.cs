using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace NativeVae.Imaging;

/// <summary>
/// Untrusted image input: only PNG, JPEG, WebP and BMP are decoded. Before any decoder runs, the container's
/// structure is checked here (<see cref="PngStructure"/>, <see cref="JpegStructure"/>, <see cref="WebpStructure"/>,
/// <see cref="BmpStructure"/>): the claimed size against the pixel cap, and that the pixel data the header implies
/// is really there, since ImageSharp 2.1 fills what is missing. Decoders skip metadata (text chunks, ICC
/// profiles, EXIF), so compressed metadata is never inflated. Every failure is one
/// <see cref="InvalidDataException"/> naming the source and what is wrong. Output is RGB (alpha dropped,
/// grayscale expanded), as diffusers' image processor feeds the VAE.
/// </summary>
internal static class ImageInput
{
    /// <summary>Default cap on decoded pixels: 4096 x 4096.</summary>
    public const long DefaultMaxPixels = 4096L * 4096;

    private const string Accepted = "PNG, JPEG, WebP or BMP";

    /// <summary>Enough leading bytes to tell every accepted and every known refused format apart.</summary>
    private const int SignatureBytes = 12;

    private static ReadOnlySpan<byte> PngSignature => [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private static ReadOnlySpan<byte> JpegSignature => [0xFF, 0xD8, 0xFF];
    private static ReadOnlySpan<byte> IcoSignature => [0, 0, 1, 0];

    private static readonly PngDecoder Png = new() { IgnoreMetadata = true };
    private static readonly JpegDecoder Jpeg = new() { IgnoreMetadata = true };
    private static readonly WebpDecoder Webp = new() { IgnoreMetadata = true };
    private static readonly BmpDecoder Bmp = new();

    /// <summary>A configuration that knows only the four accepted formats, each decoder skipping metadata.</summary>
    private static readonly Configuration Codecs = CreateConfiguration();

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
        // The structure check and Identify read ahead; the stream must be rewound for the real decode.
        Stream seekable = stream.CanSeek ? stream : CopyToMemory(stream);
        try
        {
            long start = seekable.Position;
            var (format, decoder) = Detect(seekable, name);
            seekable.Position = start;
            switch (decoder)
            {
                case PngDecoder:
                    var idat = PngStructure.Validate(seekable, name, maxPixels);
                    if (idat.Count > 1)
                    {
                        using var joined = PngStructure.WithOneIdat(seekable, start, idat, name);
                        return Decode(joined, name, maxPixels, format, decoder);
                    }
                    break;
                case JpegDecoder: JpegStructure.Validate(seekable, name, maxPixels); break;
                case WebpDecoder: WebpStructure.Validate(seekable, name, maxPixels); break;
                default: BmpStructure.Validate(seekable, name, maxPixels); break;
            }
            seekable.Position = start;
            return Decode(seekable, name, maxPixels, format, decoder);
        }
        finally
        {
            if (!ReferenceEquals(seekable, stream)) seekable.Dispose();
        }
    }

    /// <summary>Whether the bytes start with PNG's signature.</summary>
    public static bool IsPng(ReadOnlySpan<byte> head) => head.StartsWith(PngSignature);

    /// <summary>Whether the bytes start with JPEG's start-of-image marker.</summary>
    public static bool IsJpeg(ReadOnlySpan<byte> head) => head.StartsWith(JpegSignature);

    /// <summary>The one message shape of every refused image.</summary>
    internal static InvalidDataException Invalid(string name, string format, string reason) =>
        new($"{name}: not a valid {format} image: {reason}");

    /// <summary>The accepted format from the leading bytes, or a refusal naming the format when it is a known other one.</summary>
    private static (string Format, IImageDecoder Decoder) Detect(Stream stream, string name)
    {
        Span<byte> head = stackalloc byte[SignatureBytes];
        head = head[..stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)];
        if (IsPng(head)) return ("PNG", Png);
        if (IsJpeg(head)) return ("JPEG", Jpeg);
        if (head.Length == SignatureBytes && head.StartsWith("RIFF"u8) && head[8..].SequenceEqual("WEBP"u8)) return ("WebP", Webp);
        if (head.StartsWith("BM"u8)) return ("BMP", Bmp);
        string? other = head.StartsWith("GIF8"u8) ? "GIF"
            : head.StartsWith("II*\0"u8) || head.StartsWith("MM\0*"u8) ? "TIFF"
            : head.StartsWith(IcoSignature) ? "ICO"
            : head.StartsWith("8BPS"u8) ? "PSD"
            : head.StartsWith("\0\0\0"u8) && head.Length >= SignatureBytes && head[4..8].SequenceEqual("ftyp"u8) ? "HEIF/AVIF"
            : null;
        throw new InvalidDataException(other is null
            ? $"{name}: not a {Accepted} image"
            : $"{name}: {other} images are not accepted; convert it to {Accepted}");
    }

    /// <summary>Identify (header only) checks the pixel cap once more, then the decode.</summary>
    private static Image<Rgb24> Decode(Stream stream, string name, long maxPixels, string format, IImageDecoder decoder)
    {
        long start = stream.Position;
        var info = Guarded(() => ((IImageInfoDetector)decoder).Identify(Codecs, stream, CancellationToken.None), name, format)
                   ?? throw Invalid(name, format, "the decoder could not read its header");
        if (info.Width <= 0 || info.Height <= 0)
            throw Invalid(name, format, $"its header claims a {info.Width}x{info.Height} size; both must be positive");
        long pixels = (long)info.Width * info.Height;
        if (pixels > maxPixels)
            throw new InvalidDataException($"{name}: {info.Width}x{info.Height} = {pixels} pixels exceeds the limit of {maxPixels}");
        stream.Position = start;
        return Guarded(() => Image.Load<Rgb24>(Codecs, stream, decoder), name, format);
    }

    /// <summary>
    /// Runs one ImageSharp call. ImageSharp reports malformed input with its own exceptions and, on some inputs,
    /// with runtime ones (IndexOutOfRange, NullReference, DivideByZero, Argument...); each becomes the one message
    /// shape, never the raw runtime wording.
    /// </summary>
    private static T Guarded<T>(Func<T> call, string name, string format)
    {
        try
        {
            return call();
        }
        catch (InvalidImageContentException e)
        {
            throw Invalid(name, format, $"its content is corrupt or truncated ({e.Message})");
        }
        catch (ImageFormatException e)
        {
            throw Invalid(name, format, e.Message);
        }
        catch (NotSupportedException e)
        {
            throw Invalid(name, format, $"it uses a feature the decoder does not support ({e.Message})");
        }
        catch (EndOfStreamException)
        {
            throw Invalid(name, format, "the file is truncated");
        }
        catch (InvalidDataException)
        {
            // Raised by the zlib/deflate streams ImageSharp reads through.
            throw Invalid(name, format, "its compressed data is corrupt");
        }
        catch (Exception e) when (e is IndexOutOfRangeException or NullReferenceException or DivideByZeroException
                                      or ArgumentException or OverflowException or InvalidOperationException)
        {
            throw Invalid(name, format, "a header field or table is out of range (the decoder failed inside it)");
        }
    }

    private static Configuration CreateConfiguration()
    {
        var configuration = new Configuration(
            new PngConfigurationModule(), new JpegConfigurationModule(), new WebpConfigurationModule(), new BmpConfigurationModule());
        configuration.ImageFormatsManager.SetDecoder(PngFormat.Instance, Png);
        configuration.ImageFormatsManager.SetDecoder(JpegFormat.Instance, Jpeg);
        configuration.ImageFormatsManager.SetDecoder(WebpFormat.Instance, Webp);
        configuration.ImageFormatsManager.SetDecoder(BmpFormat.Instance, Bmp);
        return configuration;
    }

    /// <summary>
    /// Frees the pooled pixel buffers ImageSharp keeps after decoding, resizing and encoding (it keeps them to reuse;
    /// after one large image they are most of the process's idle memory).
    /// </summary>
    public static void ReleaseRetainedBuffers()
    {
        Codecs.MemoryAllocator.ReleaseRetainedResources();
        Configuration.Default.MemoryAllocator.ReleaseRetainedResources();
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
