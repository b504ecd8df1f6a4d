using NativeVae.Imaging;
using SixLabors.ImageSharp.Formats.Png;
using static NativeVae.Tests.Imaging.CraftedImages;

namespace NativeVae.Tests.Imaging;

/// <summary>PNGs are checked for truncated pixel data before decoding, and their metadata is never inflated.</summary>
public class PngStructureTests
{
    private const string Name = "crafted.png";
    /// <summary>Far under the 48 MiB a 4096x4096 RGB image needs, far over what refusing a header costs.</summary>
    private const long SmallAllocation = 8L << 20;

    [Test]
    public void HeaderAtThePixelCapWithAlmostNoPixelDataIsRefusedBeforeAllocating()
    {
        byte[] file = Png(Ihdr(4096, 4096), Chunk("IDAT", Zlib(new byte[16])), Chunk("IEND", []));
        Assert.That(file.Length, Is.LessThan(100));
        long before = GC.GetTotalAllocatedBytes(true);
        AssertRefused(file, Name, "not a valid PNG image", "pixel data is truncated", "4096x4096");
        long allocated = GC.GetTotalAllocatedBytes(true) - before;
        TestContext.Out.WriteLine($"{file.Length}-byte file, {allocated} bytes allocated");
        Assert.That(allocated, Is.LessThan(SmallAllocation));
    }

    [TestCase(PngColorType.Rgb, PngBitDepth.Bit8, PngInterlaceMode.None)]
    [TestCase(PngColorType.RgbWithAlpha, PngBitDepth.Bit16, PngInterlaceMode.None)]
    [TestCase(PngColorType.Palette, PngBitDepth.Bit8, PngInterlaceMode.None)]
    [TestCase(PngColorType.Grayscale, PngBitDepth.Bit1, PngInterlaceMode.None)]
    [TestCase(PngColorType.GrayscaleWithAlpha, PngBitDepth.Bit8, PngInterlaceMode.None)]
    [TestCase(PngColorType.Rgb, PngBitDepth.Bit8, PngInterlaceMode.Adam7)]
    [TestCase(PngColorType.Palette, PngBitDepth.Bit4, PngInterlaceMode.Adam7)]
    [TestCase(PngColorType.Grayscale, PngBitDepth.Bit16, PngInterlaceMode.Adam7)]
    public void RealPngsOfEveryLayoutStillLoad(PngColorType colorType, PngBitDepth depth, PngInterlaceMode interlace)
    {
        // 13x7: odd sizes, so that Adam7 has empty and partial passes and rows pack to a partial byte.
        byte[] file = Encode(new PngEncoder { ColorType = colorType, BitDepth = depth, InterlaceMethod = interlace }, 13, 7);
        using var image = Load(file, Name);
        Assert.That((image.Width, image.Height), Is.EqualTo((13, 7)));
    }

    [TestCase(PngInterlaceMode.None)]
    [TestCase(PngInterlaceMode.Adam7)]
    public void PixelDataOneByteShortIsRefused(PngInterlaceMode interlace)
    {
        var chunks = Chunks(Encode(new PngEncoder { InterlaceMethod = interlace, CompressionLevel = PngCompressionLevel.NoCompression }, 13, 7));
        // Re-compress the filtered rows less their last byte: a valid zlib stream one byte short.
        byte[] rows = Inflate(chunks.Where(c => c.Type == "IDAT").SelectMany(c => c.Data).ToArray());
        byte[] idat = Zlib(rows[..^1]);
        var cut = chunks.Where(c => c.Type != "IDAT").ToList();
        cut.Insert(cut.FindIndex(c => c.Type == "IEND"), ("IDAT", idat));
        AssertRefused(Png(cut), Name, "pixel data is truncated", $"needs {rows.Length} bytes", $"inflates to {rows.Length - 1}");
    }

    [Test]
    public void MissingIendAndCutChunksAreTruncation()
    {
        byte[] file = Encode(new PngEncoder(), 13, 7);
        AssertRefused(file[..^12], Name, "truncated", "IEND");
        AssertRefused(file[..(file.Length / 2)], Name, "truncated");
    }

    [Test]
    public void StructureErrorsNameTheRule()
    {
        byte[] idat = Chunk("IDAT", Zlib(new byte[4 * (1 + 12)])), end = Chunk("IEND", []);
        AssertRefused(Png(Chunk("IDAT", []), Ihdr(4, 4), end), Name, "first chunk is not a 13-byte IHDR");
        AssertRefused(Png(Ihdr(0, 4), idat, end), Name, "0x4");
        AssertRefused(Png(Ihdr(4, 4, depth: 3), idat, end), Name, "bit depth 3");
        AssertRefused(Png(Ihdr(4, 4, colorType: 5), idat, end), Name, "color type 5");
        AssertRefused(Png(Ihdr(4, 4, depth: 8, colorType: 3), idat, end), Name, "without a PLTE chunk");
        AssertRefused(Png(Ihdr(4, 4), end), Name, "no IDAT");
        AssertRefused(Png(Ihdr(4, 4), Chunk("IDAT", [1, 2, 3, 4]), end), Name, "pixel data is corrupt");
        AssertRefused(Png(Ihdr(5000, 5000), idat, end), Name, "exceeds the limit of");
    }

    [Test]
    public void AnIdatBombStopsAtTheClaimedSize()
    {
        // 256 MiB of zeros in IDAT for a 64x64 image: inflation stops after 64 * 193 bytes and the image loads.
        byte[] file = Png(Ihdr(64, 64), Chunk("IDAT", ZlibZeros(256L << 20)), Chunk("IEND", []));
        long before = GC.GetTotalAllocatedBytes(true);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        try
        {
            Load(file, Name).Dispose();
        }
        catch (InvalidDataException error)
        {
            Assert.That(error.Message, Does.StartWith($"{Name}: "));
        }
        Assert.That(GC.GetTotalAllocatedBytes(true) - before, Is.LessThan(SmallAllocation));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
    }

    [TestCase("zTXt")]
    [TestCase("iTXt")]
    [TestCase("iCCP")]
    public void CompressedMetadataIsNotInflated(string type)
    {
        const long BombBytes = 64L << 20;
        byte[] bomb = ZlibZeros(BombBytes);
        // zTXt and iCCP: keyword, NUL, method 0; iTXt: keyword, NUL, compressed flag 1, method 0, language NUL, keyword NUL.
        byte[] prefix = type == "iTXt" ? [.. "Comment"u8, 0, 1, 0, 0, 0] : [.. "Comment"u8, 0, 0];
        var chunks = Chunks(Encode(new PngEncoder(), 13, 7));
        chunks.Insert(1, (type, [.. prefix, .. bomb]));
        byte[] file = Png(chunks);
        long before = GC.GetTotalAllocatedBytes(true);
        using (var image = Load(file, Name)) Assert.That(image.Width, Is.EqualTo(13));
        long allocated = GC.GetTotalAllocatedBytes(true) - before;
        TestContext.Out.WriteLine($"{type}: {file.Length}-byte file, {allocated} bytes allocated");
        Assert.That(allocated, Is.LessThan(SmallAllocation), $"{type}: {allocated} bytes allocated for a {file.Length}-byte file");
    }

    private static byte[] Inflate(byte[] zlib)
    {
        using var output = new MemoryStream();
        using (var inflate = new System.IO.Compression.ZLibStream(new MemoryStream(zlib), System.IO.Compression.CompressionMode.Decompress)) inflate.CopyTo(output);
        return output.ToArray();
    }
}
