using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using NativeVae.Imaging;
using SixLabors.ImageSharp.PixelFormats;

namespace NativeVae.Tests.Imaging;

/// <summary>Builds image files in memory: real ones from ImageSharp's encoders, and crafted PNG chunks and BMP headers.</summary>
internal static class CraftedImages
{
    public static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    private static readonly uint[] CrcTable = BuildCrcTable();

    /// <summary>A seeded noise image (noise so that compressed data is not trivially small).</summary>
    public static Image<Rgb24> Noise(int width, int height, int seed = 1)
    {
        var random = new Random(seed);
        var image = new Image<Rgb24>(width, height);
        for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            image[x, y] = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
        return image;
    }

    public static byte[] Encode(IImageEncoder encoder, int width = 16, int height = 16)
    {
        using var image = Noise(width, height);
        using var memory = new MemoryStream();
        image.Save(memory, encoder);
        return memory.ToArray();
    }

    /// <summary>One PNG chunk: length, type, data, CRC over type and data.</summary>
    public static byte[] Chunk(string type, byte[] data)
    {
        var bytes = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, bytes.AsSpan(4));
        data.CopyTo(bytes, 8);
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(8 + data.Length), Crc(bytes.AsSpan(4, 4 + data.Length)));
        return bytes;
    }

    public static byte[] Ihdr(uint width, uint height, byte depth = 8, byte colorType = 2, byte interlace = 0)
    {
        var data = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(data, width);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), height);
        data[8] = depth;
        data[9] = colorType;
        data[12] = interlace;
        return Chunk("IHDR", data);
    }

    public static byte[] Png(params byte[][] chunks) => [.. PngSignature, .. chunks.SelectMany(c => c)];

    public static byte[] Zlib(byte[] data)
    {
        using var memory = new MemoryStream();
        using (var zlib = new ZLibStream(memory, CompressionLevel.SmallestSize)) zlib.Write(data);
        return memory.ToArray();
    }

    /// <summary>Zlib-compressed zeros, written in slices so that the uncompressed bytes are never held.</summary>
    public static byte[] ZlibZeros(long count)
    {
        var slice = new byte[1 << 20];
        using var memory = new MemoryStream();
        using (var zlib = new ZLibStream(memory, CompressionLevel.SmallestSize))
        {
            for (long done = 0; done < count; done += slice.Length) zlib.Write(slice, 0, (int)Math.Min(slice.Length, count - done));
        }
        return memory.ToArray();
    }

    /// <summary>The chunks of a PNG file, in order.</summary>
    public static List<(string Type, byte[] Data)> Chunks(byte[] png)
    {
        var chunks = new List<(string, byte[])>();
        for (int at = PngSignature.Length; at < png.Length;)
        {
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at));
            chunks.Add((Encoding.ASCII.GetString(png, at + 4, 4), png.AsSpan(at + 8, length).ToArray()));
            at += 12 + length;
        }
        return chunks;
    }

    public static byte[] Png(IEnumerable<(string Type, byte[] Data)> chunks) => Png(chunks.Select(c => Chunk(c.Type, c.Data)).ToArray());

    /// <summary>A BMP file header and a 40-byte info header, then <paramref name="paletteAndPixels"/>.</summary>
    public static byte[] Bmp(int width, int height, ushort bits, byte[] paletteAndPixels, uint colorsUsed = 0, uint compression = 0,
                             uint? pixelOffset = null)
    {
        const int Headers = 14 + 40;
        var bytes = new byte[Headers + paletteAndPixels.Length];
        bytes[0] = (byte)'B';
        bytes[1] = (byte)'M';
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(2), (uint)bytes.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(10), pixelOffset ?? (uint)Headers);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(14), 40);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(18), width);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(22), height);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(26), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(28), bits);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(30), compression);
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(46), colorsUsed);
        paletteAndPixels.CopyTo(bytes, Headers);
        return bytes;
    }

    /// <summary>Loads bytes as the file <paramref name="name"/>.</summary>
    public static Image<Rgb24> Load(byte[] bytes, string name, long maxPixels = ImageInput.DefaultMaxPixels) =>
        ImageInput.Load(new MemoryStream(bytes), name, maxPixels);

    /// <summary>Asserts that the bytes are refused with the one message shape, naming the file, holding each fragment.</summary>
    public static string AssertRefused(byte[] bytes, string name, params string[] fragments)
    {
        var error = Assert.Throws<InvalidDataException>(() => Load(bytes, name).Dispose())!;
        Assert.That(error.Message, Does.StartWith($"{name}: "));
        foreach (string fragment in fragments) Assert.That(error.Message, Does.Contain(fragment));
        return error.Message;
    }

    private static uint Crc(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in bytes) crc = CrcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc ^ 0xFFFFFFFF;
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
