using System.Buffers.Binary;

namespace NativeVae.Imaging;

/// <summary>
/// Reads an image container's headers from a seekable stream, for the structural checks that run before a
/// decoder sees the file. Every read is bounded by the stream's length, and a read past the end throws one
/// "truncated" error naming the file and the format, so a walker never loops or allocates on a claimed size.
/// </summary>
internal sealed class ImageStructureReader
{
    /// <summary>Large enough that scanning entropy-coded JPEG data byte by byte is not call-bound.</summary>
    private const int BufferBytes = 64 * 1024;

    private readonly Stream _stream;
    private readonly BufferedStream _buffered;
    private readonly long _start;
    private readonly byte[] _scratch = new byte[sizeof(ulong)];

    public ImageStructureReader(Stream stream, string name, string format)
    {
        _stream = stream;
        // Not disposed: disposing a BufferedStream would close the caller's stream, which it still needs.
        _buffered = new BufferedStream(stream, BufferBytes);
        _start = stream.Position;
        Length = stream.Length - _start;
        Name = name;
        Format = format;
    }

    /// <summary>Names the source in error messages.</summary>
    public string Name { get; }

    /// <summary>"PNG", "JPEG", "WebP" or "BMP", for error messages.</summary>
    public string Format { get; }

    /// <summary>The number of bytes from where the image starts to the end of the stream.</summary>
    public long Length { get; }

    /// <summary>The offset of the next byte, from where the image starts.</summary>
    public long Position
    {
        get => _buffered.Position - _start;
        set => _buffered.Position = _start + value;
    }

    public long Remaining => Length - Position;

    /// <summary>The underlying stream, positioned at <see cref="Position"/>, for a reader that pulls a region itself.</summary>
    public Stream Underlying
    {
        get
        {
            _buffered.Flush();
            _stream.Position = _start + Position;
            return _stream;
        }
    }

    /// <summary>The offset the underlying stream has for an offset from where the image starts.</summary>
    public long Absolute(long offset) => _start + offset;

    public InvalidDataException Invalid(string reason) => ImageInput.Invalid(Name, Format, reason);

    public InvalidDataException Truncated(string what) => Invalid($"the file is truncated ({what})");

    public void Read(Span<byte> into, string what)
    {
        if (Remaining < into.Length) throw Truncated($"it ends inside {what}");
        _buffered.ReadExactly(into);
    }

    /// <summary>The next byte, or -1 at the end of the file.</summary>
    public int ReadByteOrEnd() => _buffered.ReadByte();

    public byte ReadByte(string what)
    {
        int b = _buffered.ReadByte();
        return b < 0 ? throw Truncated($"it ends inside {what}") : (byte)b;
    }

    public ushort ReadUInt16BigEndian(string what) => BinaryPrimitives.ReadUInt16BigEndian(ReadBytes(sizeof(ushort), what));

    public uint ReadUInt32BigEndian(string what) => BinaryPrimitives.ReadUInt32BigEndian(ReadBytes(sizeof(uint), what));

    public ushort ReadUInt16LittleEndian(string what) => BinaryPrimitives.ReadUInt16LittleEndian(ReadBytes(sizeof(ushort), what));

    public uint ReadUInt32LittleEndian(string what) => BinaryPrimitives.ReadUInt32LittleEndian(ReadBytes(sizeof(uint), what));

    /// <summary>The next <paramref name="count"/> bytes (at most 8), valid until the next read.</summary>
    private ReadOnlySpan<byte> ReadBytes(int count, string what)
    {
        var bytes = _scratch.AsSpan(0, count);
        Read(bytes, what);
        return bytes;
    }

    public int ReadInt32LittleEndian(string what) => unchecked((int)ReadUInt32LittleEndian(what));

    /// <summary>Moves past <paramref name="count"/> bytes, which must lie inside the file.</summary>
    public void Skip(long count, string what)
    {
        if (count < 0 || count > Remaining) throw Truncated($"{what} claims {count} bytes but only {Remaining} remain");
        Position += count;
    }

    /// <summary>Refuses a claimed size over the caller's pixel cap, with the message the decoder path always gave.</summary>
    public void CheckPixels(long width, long height, long maxPixels)
    {
        if (width <= 0 || height <= 0) throw Invalid($"its header claims a {width}x{height} size; both must be positive");
        long pixels = width * height;
        if (pixels > maxPixels)
            throw new InvalidDataException($"{Name}: {width}x{height} = {pixels} pixels exceeds the limit of {maxPixels}");
    }
}
