using System.Text;

namespace NativeVae.Imaging;

/// <summary>
/// Checks a WebP's RIFF structure before ImageSharp decodes it: the RIFF size must fit the file (a larger claim
/// means the file was cut short; bytes after the RIFF are ignored, as the WebP container spec allows), every chunk
/// must fit the RIFF, and the first chunk (VP8, VP8L or VP8X) must give a non-zero size within the pixel cap.
/// </summary>
internal static class WebpStructure
{
    private const int RiffHeaderBytes = 12;
    /// <summary>The RIFF size counts from after the "RIFF" tag and the size field itself.</summary>
    private const int RiffSizeOffset = 8;
    private const int ChunkHeaderBytes = 8;
    private const int Vp8HeaderBytes = 10;
    private const int Vp8LHeaderBytes = 5;
    private const int Vp8XHeaderBytes = 10;
    private const byte Vp8LSignature = 0x2F;
    private const int Vp8SizeMask = 0x3FFF;
    /// <summary>A VP8 key frame's 3-byte frame tag and 3-byte start code precede its width and height.</summary>
    private const int Vp8FrameTagAndStartCodeBytes = 6;
    private const int Vp8XFlagsBytes = 4;
    private const int Vp8LSizeBits = 14;

    public static void Validate(Stream stream, string name, long maxPixels)
    {
        var reader = new ImageStructureReader(stream, name, "WebP");
        reader.Skip(sizeof(uint), "the RIFF tag");
        long riffEnd = RiffSizeOffset + (long)reader.ReadUInt32LittleEndian("the RIFF header");
        if (riffEnd > reader.Length) throw reader.Truncated($"its RIFF header claims {riffEnd} bytes but the file has {reader.Length}");
        reader.Skip(sizeof(uint), "the WEBP tag");
        if (riffEnd < RiffHeaderBytes + ChunkHeaderBytes) throw reader.Invalid($"its RIFF size {riffEnd - RiffSizeOffset} leaves no room for a chunk");
        Span<byte> tag = stackalloc byte[4];
        bool first = true;
        while (reader.Position + ChunkHeaderBytes <= riffEnd)
        {
            reader.Read(tag, "a chunk header");
            string tagName = Encoding.ASCII.GetString(tag);
            long size = reader.ReadUInt32LittleEndian("a chunk header");
            long dataEnd = reader.Position + size;
            if (dataEnd > riffEnd) throw reader.Truncated($"chunk '{tagName}' claims {size} bytes but the RIFF ends {riffEnd - reader.Position} bytes later");
            if (first)
            {
                ReadImageHeader(reader, tagName, size, maxPixels);
                first = false;
            }
            // Chunks are padded to an even size; the padding byte may be missing after the last one.
            reader.Position = Math.Min(dataEnd + (size & 1), riffEnd);
        }
        if (first) throw reader.Invalid("it has no chunk");
    }

    private static void ReadImageHeader(ImageStructureReader reader, string tag, long size, long maxPixels)
    {
        switch (tag)
        {
            case "VP8 ":
            {
                if (size < Vp8HeaderBytes) throw reader.Invalid($"its VP8 chunk is {size} bytes, under its {Vp8HeaderBytes}-byte header");
                reader.Skip(Vp8FrameTagAndStartCodeBytes, "the VP8 frame tag and start code");
                int width = reader.ReadUInt16LittleEndian("the VP8 header") & Vp8SizeMask;
                int height = reader.ReadUInt16LittleEndian("the VP8 header") & Vp8SizeMask;
                reader.CheckPixels(width, height, maxPixels);
                break;
            }
            case "VP8L":
            {
                if (size < Vp8LHeaderBytes) throw reader.Invalid($"its VP8L chunk is {size} bytes, under its {Vp8LHeaderBytes}-byte header");
                if (reader.ReadByte("the VP8L header") != Vp8LSignature) throw reader.Invalid("its VP8L chunk lacks the 0x2F signature");
                uint bits = reader.ReadUInt32LittleEndian("the VP8L header");
                long width = (bits & ((1u << Vp8LSizeBits) - 1)) + 1, height = ((bits >> Vp8LSizeBits) & ((1u << Vp8LSizeBits) - 1)) + 1;
                reader.CheckPixels(width, height, maxPixels);
                break;
            }
            case "VP8X":
            {
                if (size < Vp8XHeaderBytes) throw reader.Invalid($"its VP8X chunk is {size} bytes, under its {Vp8XHeaderBytes}-byte header");
                reader.Skip(Vp8XFlagsBytes, "the VP8X flags");
                long width = ReadUInt24(reader) + 1L, height = ReadUInt24(reader) + 1L;
                reader.CheckPixels(width, height, maxPixels);
                break;
            }
            default:
                throw reader.Invalid($"its first chunk is '{tag}', not VP8, VP8L or VP8X");
        }
    }

    private static int ReadUInt24(ImageStructureReader reader)
    {
        int low = reader.ReadUInt16LittleEndian("the VP8X canvas size");
        return low | reader.ReadByte("the VP8X canvas size") << 16;
    }
}
