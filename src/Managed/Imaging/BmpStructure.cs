namespace NativeVae.Imaging;

/// <summary>
/// Checks a BMP's headers before ImageSharp decodes it; malformed ones otherwise reach the user as
/// DivideByZero, IndexOutOfRange or NullReference from inside the decoder. The size must be non-zero and within
/// the pixel cap, bits per pixel one of 1, 4, 8, 16, 24, 32, a palette must be present where bits per pixel
/// is 8 or fewer, and uncompressed pixel data must lie wholly inside the file.
/// </summary>
internal static class BmpStructure
{
    private const int FileHeaderBytes = 14;
    private const int PixelOffsetField = 10;
    /// <summary>BITMAPCOREHEADER (OS/2 1.x): 16-bit width and height, 3-byte palette entries.</summary>
    private const int CoreHeaderBytes = 12;
    /// <summary>The OS/2 2.x header cut short after bits per pixel: no compression field.</summary>
    private const int ShortOs2HeaderBytes = 16;
    /// <summary>BITMAPINFOHEADER; the later V2..V5 headers extend it.</summary>
    private const int InfoHeaderBytes = 40;
    private const int CorePaletteEntryBytes = 3, PaletteEntryBytes = 4;
    private const int MaxPalettedBits = 8;
    private const uint Uncompressed = 0, BitFields = 3, AlphaBitFields = 6;
    /// <summary>Three 32-bit masks that follow a 40-byte header when the compression is BI_BITFIELDS.</summary>
    private const int BitFieldMaskBytes = 12;
    private const int RowAlignmentBits = 32;

    public static void Validate(Stream stream, string name, long maxPixels)
    {
        var reader = new ImageStructureReader(stream, name, "BMP");
        reader.Skip(PixelOffsetField, "the file header");
        long pixelOffset = reader.ReadUInt32LittleEndian("the file header");
        uint headerBytes = reader.ReadUInt32LittleEndian("the DIB header size");
        long width, height;
        int bits;
        uint compression = Uncompressed, colorsUsed = 0;
        if (headerBytes == CoreHeaderBytes)
        {
            width = reader.ReadUInt16LittleEndian("the core header");
            height = reader.ReadUInt16LittleEndian("the core header");
            reader.ReadUInt16LittleEndian("the core header (planes)");
            bits = reader.ReadUInt16LittleEndian("the core header");
        }
        else if (headerBytes >= ShortOs2HeaderBytes)
        {
            width = reader.ReadInt32LittleEndian("the info header");
            height = reader.ReadInt32LittleEndian("the info header");
            reader.ReadUInt16LittleEndian("the info header (planes)");
            bits = reader.ReadUInt16LittleEndian("the info header");
            if (headerBytes >= InfoHeaderBytes)
            {
                compression = reader.ReadUInt32LittleEndian("the info header");
                reader.Skip(3 * sizeof(uint), "the info header (image size, resolution)");
                colorsUsed = reader.ReadUInt32LittleEndian("the info header");
            }
        }
        else
        {
            throw reader.Invalid($"its DIB header size {headerBytes} is not 12 or at least 16");
        }
        // A negative height marks a top-down bitmap; its magnitude is the size.
        long rows = Math.Abs(height);
        if (width <= 0 || rows == 0) throw reader.Invalid($"its header claims a {width}x{height} size; the width must be positive and the height non-zero");
        reader.CheckPixels(width, rows, maxPixels);
        if (bits is not (1 or 4 or 8 or 16 or 24 or 32)) throw reader.Invalid($"{bits} bits per pixel is not one of 1, 4, 8, 16, 24, 32");

        long headersEnd = FileHeaderBytes + (long)headerBytes;
        if (headerBytes == InfoHeaderBytes && compression is BitFields or AlphaBitFields) headersEnd += BitFieldMaskBytes;
        if (pixelOffset < headersEnd || pixelOffset > reader.Length)
            throw reader.Invalid($"its pixel data offset {pixelOffset} is not between the end of its headers ({headersEnd}) and the end of the file ({reader.Length})");
        if (bits <= MaxPalettedBits)
        {
            long entryBytes = headerBytes == CoreHeaderBytes ? CorePaletteEntryBytes : PaletteEntryBytes;
            long maxColors = 1L << bits;
            if (colorsUsed > maxColors) throw reader.Invalid($"it claims {colorsUsed} palette colors, over the {maxColors} that {bits} bits can index");
            long colors = colorsUsed == 0 ? maxColors : colorsUsed;
            long paletteBytes = pixelOffset - headersEnd;
            if (paletteBytes < colors * entryBytes)
                throw reader.Invalid($"it has {bits} bits per pixel but room for only {paletteBytes / entryBytes} of its {colors} palette colors");
        }
        if (compression is Uncompressed or BitFields or AlphaBitFields)
        {
            long rowBytes = (width * bits + RowAlignmentBits - 1) / RowAlignmentBits * (RowAlignmentBits / 8);
            long needed = rowBytes * rows;
            if (pixelOffset + needed > reader.Length)
                throw reader.Invalid($"its pixel data is truncated: {width}x{rows} at {bits} bits per pixel needs {needed} bytes but the file has {reader.Length - pixelOffset} after offset {pixelOffset}");
        }
    }
}
