using System.IO.Hashing;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace NativeVae.Imaging;

/// <summary>
/// Checks a PNG's chunk structure and the size of its pixel data before ImageSharp decodes it. ImageSharp 2.1
/// fills rows that the IDAT data does not cover, so a 69-byte file whose header claims 4096x4096 would
/// allocate the full image; here the IDAT stream is inflated (into a small discarded buffer) and must yield
/// exactly the filtered size the header implies. Inflation stops at that size, so an IDAT bomb costs no more
/// than a real image of the claimed size. Other chunks (text, ICC profile) are skipped, never inflated.
/// </summary>
internal static class PngStructure
{
    private const int SignatureBytes = 8;
    private const int HeaderChunkBytes = 13;
    /// <summary>Length, type and CRC around each chunk's data.</summary>
    private const int ChunkFramingBytes = 12;
    private const int CrcBytes = 4;
    private const int LengthBytes = 4;
    /// <summary>Length and type before each chunk's data.</summary>
    private const int ChunkHeaderBytes = 8;
    private const int InflateBufferBytes = 64 * 1024;
    private const byte PaletteColorType = 3;
    private const byte Adam7 = 1;

    /// <summary>Adam7 passes: first column, first row, column step, row step.</summary>
    private static readonly (int X, int Y, int Dx, int Dy)[] Adam7Passes =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    /// <summary>Checks the structure; returns where each IDAT chunk's data lies in <paramref name="stream"/> (absolute offsets).</summary>
    public static IReadOnlyList<(long Offset, long Length)> Validate(Stream stream, string name, long maxPixels)
    {
        var reader = new ImageStructureReader(stream, name, "PNG");
        reader.Skip(SignatureBytes, "the signature");
        var idat = new List<(long Offset, long Length)>();
        Header? header = null;
        bool palette = false, idatEnded = false, end = false;
        Span<byte> type = stackalloc byte[4];
        while (!end)
        {
            if (reader.Remaining < ChunkFramingBytes) throw reader.Truncated("it ends before the IEND chunk");
            uint length = reader.ReadUInt32BigEndian("a chunk length");
            reader.Read(type, "a chunk type");
            string typeName = Encoding.ASCII.GetString(type);
            if (length > int.MaxValue) throw reader.Invalid($"chunk {typeName} claims {length} bytes, over the format's 2^31-1 limit");
            if (length + (long)CrcBytes > reader.Remaining)
                throw reader.Truncated($"chunk {typeName} claims {length} bytes but only {reader.Remaining - CrcBytes} remain");
            if (header is null)
            {
                if (typeName != "IHDR" || length != HeaderChunkBytes) throw reader.Invalid("the first chunk is not a 13-byte IHDR");
                header = ReadHeader(reader, maxPixels);
                reader.Skip(CrcBytes, "the IHDR CRC");
                continue;
            }
            if (idat.Count > 0 && typeName != "IDAT") idatEnded = true;
            switch (typeName)
            {
                case "IHDR":
                    throw reader.Invalid("it has a second IHDR chunk");
                case "PLTE":
                    palette = true;
                    break;
                case "IDAT":
                    if (idatEnded) throw reader.Invalid("its IDAT chunks are not consecutive");
                    idat.Add((reader.Absolute(reader.Position), length));
                    break;
                case "IEND":
                    end = true;
                    break;
            }
            reader.Skip(length + (long)CrcBytes, $"chunk {typeName}");
        }
        var ihdr = header ?? throw reader.Invalid("it has no IHDR chunk");
        if (idat.Count == 0) throw reader.Invalid("it has no IDAT (pixel data) chunk");
        if (ihdr.ColorType == PaletteColorType && !palette) throw reader.Invalid("it is a palette image without a PLTE chunk");
        CheckPixelData(reader, stream, idat, ihdr);
        return idat;
    }

    /// <summary>
    /// The PNG with its run of IDAT chunks (<paramref name="idat"/>, from <see cref="Validate"/>) joined into one.
    /// ImageSharp 2.1 fails on a valid PNG whose zlib stream is split into very small IDAT chunks (1 byte each: its
    /// inflater reads the zlib header across them); one chunk holds the same stream.
    /// </summary>
    /// <exception cref="InvalidDataException">the joined data would be over the format's 2^31-1 bytes per chunk.</exception>
    public static MemoryStream WithOneIdat(Stream stream, long start, IReadOnlyList<(long Offset, long Length)> idat, string name)
    {
        long total = idat.Sum(c => c.Length);
        if (total > int.MaxValue)
            throw new InvalidDataException($"{name}: not a valid PNG: its IDAT chunks hold {total} bytes, over the 2^31-1 one chunk can hold");
        long runStart = idat[0].Offset - ChunkHeaderBytes, runEnd = idat[^1].Offset + idat[^1].Length + CrcBytes;
        var merged = new MemoryStream();
        Copy(stream, start, runStart - start, merged);
        var chunk = new byte[ChunkFramingBytes + total];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)total);
        "IDAT"u8.CopyTo(chunk.AsSpan(LengthBytes));
        int at = ChunkHeaderBytes;
        foreach (var (offset, length) in idat)
        {
            stream.Position = offset;
            stream.ReadExactly(chunk, at, (int)length);
            at += (int)length;
        }
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(at), Crc32.HashToUInt32(chunk.AsSpan(LengthBytes, at - LengthBytes)));
        merged.Write(chunk);
        Copy(stream, runEnd, stream.Length - runEnd, merged);
        merged.Position = 0;
        return merged;
    }

    private static void Copy(Stream from, long offset, long count, Stream to)
    {
        from.Position = offset;
        var buffer = new byte[Math.Min(count, InflateBufferBytes)];
        while (count > 0)
        {
            int read = from.Read(buffer, 0, (int)Math.Min(buffer.Length, count));
            if (read == 0) throw new EndOfStreamException();
            to.Write(buffer, 0, read);
            count -= read;
        }
    }

    /// <summary>The IHDR fields that fix the size of the pixel data.</summary>
    private readonly record struct Header(int Width, int Height, int BitsPerPixel, byte ColorType, bool Interlaced);

    private static Header ReadHeader(ImageStructureReader reader, long maxPixels)
    {
        uint width = reader.ReadUInt32BigEndian("IHDR"), height = reader.ReadUInt32BigEndian("IHDR");
        byte depth = reader.ReadByte("IHDR"), colorType = reader.ReadByte("IHDR");
        byte compression = reader.ReadByte("IHDR"), filter = reader.ReadByte("IHDR"), interlace = reader.ReadByte("IHDR");
        if (width == 0 || height == 0 || width > int.MaxValue || height > int.MaxValue)
            throw reader.Invalid($"its header claims a {width}x{height} size; each side must be 1 to 2^31-1");
        reader.CheckPixels(width, height, maxPixels);
        int channels = colorType switch
        {
            0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4,
            _ => throw reader.Invalid($"color type {colorType} is not one of 0, 2, 3, 4, 6"),
        };
        bool depthAllowed = colorType switch
        {
            0 => depth is 1 or 2 or 4 or 8 or 16,
            3 => depth is 1 or 2 or 4 or 8,
            _ => depth is 8 or 16,
        };
        if (!depthAllowed) throw reader.Invalid($"bit depth {depth} is not allowed for color type {colorType}");
        if (compression != 0 || filter != 0) throw reader.Invalid($"compression method {compression} / filter method {filter} is not 0");
        if (interlace > Adam7) throw reader.Invalid($"interlace method {interlace} is not 0 or 1");
        return new Header((int)width, (int)height, channels * depth, colorType, interlace == Adam7);
    }

    /// <summary>Each row is a filter byte then its packed samples.</summary>
    private static long FilteredBytes(long width, long height, int bitsPerPixel) =>
        width == 0 || height == 0 ? 0 : height * (1 + (width * bitsPerPixel + 7) / 8);

    private static long ExpectedBytes(Header header)
    {
        if (!header.Interlaced) return FilteredBytes(header.Width, header.Height, header.BitsPerPixel);
        long total = 0;
        foreach (var (x, y, dx, dy) in Adam7Passes)
        {
            long passWidth = (header.Width - x + dx - 1L) / dx, passHeight = (header.Height - y + dy - 1L) / dy;
            total += FilteredBytes(passWidth, passHeight, header.BitsPerPixel);
        }
        return total;
    }

    /// <summary>
    /// zlib's error codes other than "corrupt data" (a mutated stream can yield one) arrive as ZLibException, an internal
    /// IOException of System.IO.Compression: still a bad file, not an I/O failure.
    /// </summary>
    private static bool IsZlibError(Exception error) => error is IOException && error.GetType().Namespace == typeof(ZLibStream).Namespace;

    private static void CheckPixelData(ImageStructureReader reader, Stream stream, List<(long Offset, long Length)> idat, Header header)
    {
        long expected = ExpectedBytes(header), inflated = 0;
        var buffer = new byte[InflateBufferBytes];
        try
        {
            using var zlib = new ZLibStream(new SegmentStream(stream, idat), CompressionMode.Decompress);
            while (inflated < expected)
            {
                int read = zlib.Read(buffer, 0, (int)Math.Min(buffer.Length, expected - inflated));
                if (read == 0) break;
                inflated += read;
            }
        }
        catch (Exception error) when (error is InvalidDataException || IsZlibError(error))
        {
            throw reader.Invalid($"its pixel data is corrupt (the IDAT zlib stream does not inflate past byte {inflated})");
        }
        if (inflated < expected)
            throw reader.Invalid($"its pixel data is truncated: {header.Width}x{header.Height} needs {expected} bytes of filtered rows but the IDAT data inflates to {inflated}");
    }
}
