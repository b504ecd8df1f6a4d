using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Where an <see cref="ActivationSpace"/> keeps its bytes: host memory, a device's page-locked memory, or a temporary
/// file. Read and written as fp32 at byte offsets; each activation's elements are kept as fp32 or as
/// <see cref="Elements"/> (the space says which: <see cref="Holds"/>).
/// </summary>
internal interface IActivationMedium : IDisposable
{
    /// <summary>How activations' elements are kept unless one asks for fp32.</summary>
    DType Elements { get; }

    /// <summary>Whether it can keep an activation's elements as <paramref name="kept"/>.</summary>
    bool Holds(DType kept);

    /// <summary>Bytes usable now.</summary>
    long Length { get; }

    /// <summary>Makes bytes [0, <paramref name="bytes"/>) usable (they keep their contents; new ones are unspecified).</summary>
    /// <exception cref="IOException">the medium cannot grow that far; the message gives both sizes.</exception>
    void EnsureLength(long bytes);

    /// <summary>Fills <paramref name="destination"/> from the elements at <paramref name="byteOffset"/>, kept as <paramref name="kept"/>.</summary>
    void Read(long byteOffset, Span<float> destination, DType kept);

    /// <summary>Writes <paramref name="source"/> to the elements at <paramref name="byteOffset"/>, kept as <paramref name="kept"/>.</summary>
    void Write(long byteOffset, ReadOnlySpan<float> source, DType kept);
}
