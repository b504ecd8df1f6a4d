namespace NativeVae.Imaging;

/// <summary>
/// Walks a JPEG's marker segments and entropy-coded scans before ImageSharp decodes it. ImageSharp 2.1 decodes a
/// file cut short as if the rest were there, so a JPEG must reach its end-of-image marker (FF D9); the frame
/// header's size must be non-zero and within the pixel cap. Segments are skipped by their length, so an EXIF
/// thumbnail's own markers are never mistaken for the image's.
/// </summary>
internal static class JpegStructure
{
    private const byte MarkerPrefix = 0xFF;
    private const byte StartOfImage = 0xD8;
    private const byte EndOfImage = 0xD9;
    private const byte StartOfScan = 0xDA;
    private const byte FirstRestart = 0xD0, LastRestart = 0xD7;
    /// <summary>TEM: a marker with no length, like the restarts.</summary>
    private const byte Temporary = 0x01;
    private const byte FirstFrame = 0xC0, LastFrame = 0xCF;
    /// <summary>DHT, JPG and DAC share the SOF range but are not frame headers.</summary>
    private const byte HuffmanTables = 0xC4, Reserved = 0xC8, ArithmeticConditioning = 0xCC;
    /// <summary>The two length bytes count themselves.</summary>
    private const int LengthBytes = 2;
    private const int MaxComponents = 4;

    public static void Validate(Stream stream, string name, long maxPixels)
    {
        var reader = new ImageStructureReader(stream, name, "JPEG");
        if (reader.ReadByte("the signature") != MarkerPrefix || reader.ReadByte("the signature") != StartOfImage)
            throw reader.Invalid("it does not start with a start-of-image marker (FF D8)");
        bool frame = false, scan = false;
        int marker = ReadMarker(reader);
        while (true)
        {
            if (marker == EndOfImage) break;
            if (marker is >= FirstRestart and <= LastRestart or Temporary)
            {
                marker = ReadMarker(reader);
                continue;
            }
            int length = reader.ReadUInt16BigEndian($"the length of marker FF {marker:X2}");
            if (length < LengthBytes) throw reader.Invalid($"marker FF {marker:X2} has length {length}, under the 2 bytes of the length itself");
            long segmentEnd = reader.Position + length - LengthBytes;
            if (segmentEnd > reader.Length) throw reader.Truncated($"marker FF {marker:X2} claims {length} bytes but only {reader.Remaining + LengthBytes} remain");
            if (marker is >= FirstFrame and <= LastFrame and not HuffmanTables and not Reserved and not ArithmeticConditioning)
            {
                ReadFrame(reader, maxPixels, length);
                frame = true;
            }
            reader.Position = segmentEnd;
            if (marker == StartOfScan)
            {
                if (!frame) throw reader.Invalid("a scan starts before any frame header (SOF)");
                scan = true;
                marker = SkipEntropyCodedData(reader);
            }
            else
            {
                marker = ReadMarker(reader);
            }
        }
        if (!scan) throw reader.Invalid("it has no scan (SOS) before its end-of-image marker");
    }

    private static void ReadFrame(ImageStructureReader reader, long maxPixels, int length)
    {
        const int FixedBytes = 8, BytesPerComponent = 3;
        if (length < FixedBytes) throw reader.Invalid($"its frame header is {length} bytes, under the 8 it needs");
        reader.ReadByte("the frame header (precision)");
        int height = reader.ReadUInt16BigEndian("the frame header"), width = reader.ReadUInt16BigEndian("the frame header");
        int components = reader.ReadByte("the frame header");
        if (width == 0 || height == 0) throw reader.Invalid($"its frame header claims a {width}x{height} size; both must be positive");
        if (components is 0 or > MaxComponents) throw reader.Invalid($"its frame header claims {components} components, not 1 to {MaxComponents}");
        if (length < FixedBytes + BytesPerComponent * components)
            throw reader.Invalid($"its frame header is {length} bytes, too short for {components} components");
        reader.CheckPixels(width, height, maxPixels);
    }

    /// <summary>The next marker's code, past any fill bytes (FF FF ...).</summary>
    private static int ReadMarker(ImageStructureReader reader)
    {
        long at = reader.Position;
        int prefix = reader.ReadByteOrEnd();
        if (prefix < 0) throw reader.Truncated("it ends before its end-of-image marker (FF D9)");
        if (prefix != MarkerPrefix) throw reader.Invalid($"byte {at} is 0x{prefix:X2} where a marker (FF xx) should start");
        int code;
        do
        {
            code = reader.ReadByteOrEnd();
            if (code < 0) throw reader.Truncated("it ends before its end-of-image marker (FF D9)");
        } while (code == MarkerPrefix);
        return code;
    }

    /// <summary>
    /// Scans entropy-coded data to the marker that ends it: FF 00 is a stuffed data byte and FF D0..D7 a restart,
    /// both inside the scan; any other FF xx ends it. Returns that marker's code.
    /// </summary>
    private static int SkipEntropyCodedData(ImageStructureReader reader)
    {
        while (true)
        {
            int b = reader.ReadByteOrEnd();
            if (b < 0) throw reader.Truncated("it ends inside a scan, before its end-of-image marker (FF D9)");
            if (b != MarkerPrefix) continue;
            int code;
            do
            {
                code = reader.ReadByteOrEnd();
                if (code < 0) throw reader.Truncated("it ends inside a scan, before its end-of-image marker (FF D9)");
            } while (code == MarkerPrefix);
            if (code == 0 || code is >= FirstRestart and <= LastRestart) continue;
            return code;
        }
    }
}
