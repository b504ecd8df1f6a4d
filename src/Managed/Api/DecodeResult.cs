using NativeVae.Tensors;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae;

/// <summary>
/// The result of a decode: exactly one of the members is set, per <see cref="DecodeOptions.Output"/>.
/// Disposing disposes the images.
/// </summary>
public sealed class DecodeResult : IDisposable
{
    internal DecodeResult(DecodeOutput kind) => Kind = kind;

    public DecodeOutput Kind { get; }

    /// <summary>One RGB image per batch item (<see cref="DecodeOutput.Images"/>).</summary>
    public IReadOnlyList<Image<Rgb24>>? Images { get; internal init; }

    /// <summary>One PNG/JPEG file's bytes per batch item (<see cref="DecodeOutput.EncodedImages"/>).</summary>
    public IReadOnlyList<byte[]>? EncodedImages { get; internal init; }

    /// <summary>[N, 3, H, W] in [-1, 1] (<see cref="DecodeOutput.FloatTensor"/>).</summary>
    public HostTensor<float>? FloatTensor { get; internal init; }

    /// <summary>[N, H, W, 3] uint8 (<see cref="DecodeOutput.UInt8Tensor"/>).</summary>
    public HostTensor<byte>? UInt8Tensor { get; internal init; }

    public void Dispose()
    {
        foreach (var image in Images ?? []) image.Dispose();
    }
}
