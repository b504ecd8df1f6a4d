using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Activations in host memory, beside a GPU whose memory is the scarce one: fp32 in chunks of a fixed size, so the
/// space grows without copying what it holds and no array passes .NET's 2^31-element limit.
/// </summary>
internal sealed class HostMedium : IActivationMedium
{
    /// <summary>Floats per chunk: 64 MiB.</summary>
    private const int ChunkFloats = 1 << 24;

    private readonly List<float[]> _chunks = [];

    public DType Elements => DType.F32;

    public bool Holds(DType kept) => kept == DType.F32;

    public long Length => (long)_chunks.Count * ChunkFloats * sizeof(float);

    public void EnsureLength(long bytes)
    {
        long floats = (bytes + sizeof(float) - 1) / sizeof(float);
        while ((long)_chunks.Count * ChunkFloats < floats) _chunks.Add(new float[ChunkFloats]);
    }

    public void Read(long byteOffset, Span<float> destination, DType kept)
    {
        long at = byteOffset / sizeof(float);
        while (!destination.IsEmpty)
        {
            var (chunk, start, length) = Piece(at, destination.Length);
            chunk.AsSpan(start, length).CopyTo(destination);
            destination = destination[length..];
            at += length;
        }
    }

    public void Write(long byteOffset, ReadOnlySpan<float> source, DType kept)
    {
        long at = byteOffset / sizeof(float);
        while (!source.IsEmpty)
        {
            var (chunk, start, length) = Piece(at, source.Length);
            source[..length].CopyTo(chunk.AsSpan(start, length));
            source = source[length..];
            at += length;
        }
    }

    /// <summary>The chunk holding float <paramref name="at"/>, where in it, and how many of <paramref name="wanted"/> it holds.</summary>
    private (float[] Chunk, int Start, int Length) Piece(long at, int wanted)
    {
        int index = checked((int)(at / ChunkFloats));
        if (index >= _chunks.Count) throw new ArgumentOutOfRangeException(nameof(at), at, "read or write past the activation space's end");
        int start = (int)(at % ChunkFloats);
        return (_chunks[index], start, Math.Min(wanted, ChunkFloats - start));
    }

    public void Dispose() => _chunks.Clear();
}
