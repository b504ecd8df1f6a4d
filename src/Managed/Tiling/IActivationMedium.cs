using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Where an <see cref="ActivationSpace"/> keeps its bytes: host memory, or a temporary file. Read and written as fp32
/// at byte offsets; the medium stores elements as <see cref="Elements"/> says.
/// </summary>
internal interface IActivationMedium : IDisposable
{
    /// <summary>How elements are kept.</summary>
    DType Elements { get; }

    /// <summary>Bytes usable now.</summary>
    long Length { get; }

    /// <summary>Makes bytes [0, <paramref name="bytes"/>) usable (they keep their contents; new ones are unspecified).</summary>
    /// <exception cref="IOException">the medium cannot grow that far; the message gives both sizes.</exception>
    void EnsureLength(long bytes);

    /// <summary>Fills <paramref name="destination"/> from the elements at <paramref name="byteOffset"/>.</summary>
    void Read(long byteOffset, Span<float> destination);

    /// <summary>Writes <paramref name="source"/> to the elements at <paramref name="byteOffset"/>.</summary>
    void Write(long byteOffset, ReadOnlySpan<float> source);
}
