namespace NativeVae.Imaging;

/// <summary>
/// A read-only stream over regions of another seekable stream, read one after the other: the data of a PNG's
/// IDAT chunks, which together form one zlib stream.
/// </summary>
internal sealed class SegmentStream : Stream
{
    private readonly Stream _source;
    private readonly IReadOnlyList<(long Offset, long Length)> _segments;
    private int _segment;
    private long _inSegment;

    /// <param name="segments">Absolute offsets into <paramref name="source"/>, each region inside it.</param>
    public SegmentStream(Stream source, IReadOnlyList<(long Offset, long Length)> segments)
    {
        _source = source;
        _segments = segments;
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        while (_segment < _segments.Count && _inSegment == _segments[_segment].Length)
        {
            _segment++;
            _inSegment = 0;
        }
        if (_segment == _segments.Count || buffer.IsEmpty) return 0;
        var (start, length) = _segments[_segment];
        int count = (int)Math.Min(buffer.Length, length - _inSegment);
        _source.Position = start + _inSegment;
        int read = _source.Read(buffer[..count]);
        if (read == 0) throw new EndOfStreamException("a region lies past the end of its source");
        _inSegment += read;
        return read;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
