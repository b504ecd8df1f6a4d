using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae;

/// <summary>
/// The result of a decode, in the form <see cref="DecodeOptions.Output"/> asked for (<see cref="Kind"/>). Each member
/// returns its form, and throws <see cref="InvalidOperationException"/> for the others. Disposing disposes the images.
/// </summary>
public sealed class DecodeResult : IDisposable
{
    private readonly IReadOnlyList<Image<Rgb24>>? _images;
    private readonly IReadOnlyList<byte[]>? _encodedImages;
    private readonly HostTensor<float>? _floatTensor;
    private readonly HostTensor<byte>? _uint8Tensor;

    private DecodeResult(DecodeOutput kind, IReadOnlyList<Image<Rgb24>>? images = null, IReadOnlyList<byte[]>? encodedImages = null,
        HostTensor<float>? floatTensor = null, HostTensor<byte>? uint8Tensor = null)
    {
        Kind = kind;
        (_images, _encodedImages, _floatTensor, _uint8Tensor) = (images, encodedImages, floatTensor, uint8Tensor);
    }

    internal static DecodeResult OfImages(IReadOnlyList<Image<Rgb24>> images) => new(DecodeOutput.Images, images: images);

    internal static DecodeResult OfEncodedImages(IReadOnlyList<byte[]> files) => new(DecodeOutput.EncodedImages, encodedImages: files);

    internal static DecodeResult OfFloatTensor(HostTensor<float> tensor) => new(DecodeOutput.FloatTensor, floatTensor: tensor);

    internal static DecodeResult OfUInt8Tensor(HostTensor<byte> tensor) => new(DecodeOutput.UInt8Tensor, uint8Tensor: tensor);

    /// <summary>Which form this result holds.</summary>
    public DecodeOutput Kind { get; }

    /// <summary>One RGB image per batch item (<see cref="DecodeOutput.Images"/>).</summary>
    /// <exception cref="InvalidOperationException">the result holds another form.</exception>
    public IReadOnlyList<Image<Rgb24>> Images => _images ?? throw Other(DecodeOutput.Images);

    /// <summary>One PNG/JPEG file's bytes per batch item (<see cref="DecodeOutput.EncodedImages"/>).</summary>
    /// <exception cref="InvalidOperationException">the result holds another form.</exception>
    public IReadOnlyList<byte[]> EncodedImages => _encodedImages ?? throw Other(DecodeOutput.EncodedImages);

    /// <summary><c>[N, 3, H, W]</c> in [-1, 1] (<see cref="DecodeOutput.FloatTensor"/>).</summary>
    /// <exception cref="InvalidOperationException">the result holds another form.</exception>
    public HostTensor<float> FloatTensor => _floatTensor ?? throw Other(DecodeOutput.FloatTensor);

    /// <summary><c>[N, H, W, 3]</c> uint8 (<see cref="DecodeOutput.UInt8Tensor"/>).</summary>
    /// <exception cref="InvalidOperationException">the result holds another form.</exception>
    public HostTensor<byte> UInt8Tensor => _uint8Tensor ?? throw Other(DecodeOutput.UInt8Tensor);

    private InvalidOperationException Other(DecodeOutput asked) =>
        new($"this decode result holds {Kind}, not {asked}: decode with DecodeOptions.Output = DecodeOutput.{asked}");

    /// <summary>Disposes the images of an <see cref="DecodeOutput.Images"/> result (the others hold only arrays).</summary>
    public void Dispose()
    {
        foreach (var image in _images ?? []) image.Dispose();
    }
}
