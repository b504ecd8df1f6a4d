using SixLabors.ImageSharp.Formats.Bmp;
using static NativeVae.Tests.Imaging.CraftedImages;

namespace NativeVae.Tests.Imaging;

/// <summary>BMP headers are checked before decoding, so malformed ones never reach the decoder's runtime failures.</summary>
public class BmpStructureTests
{
    private const string Name = "crafted.bmp";
    /// <summary>A 4x4 24-bit image: 12-byte rows, already 4-byte aligned.</summary>
    private static readonly byte[] Pixels24 = new byte[4 * 12];

    [TestCase(BmpBitsPerPixel.Pixel24)]
    [TestCase(BmpBitsPerPixel.Pixel32)]
    [TestCase(BmpBitsPerPixel.Pixel8)]
    [TestCase(BmpBitsPerPixel.Pixel1)]
    public void RealBmpsLoad(BmpBitsPerPixel bits)
    {
        using var image = Load(Encode(new BmpEncoder { BitsPerPixel = bits }, 13, 7), Name);
        Assert.That((image.Width, image.Height), Is.EqualTo((13, 7)));
    }

    [Test]
    public void ACraftedValidBmpLoadsTopDownToo()
    {
        Load(Bmp(4, 4, 24, Pixels24), Name).Dispose();
        Load(Bmp(4, -4, 24, Pixels24), Name).Dispose();
    }

    [TestCase(0, 4, "0x4")]
    [TestCase(-4, 4, "-4x4")]
    [TestCase(4, 0, "4x0")]
    public void ZeroOrNegativeSizesAreRefused(int width, int height, string size) =>
        AssertRefused(Bmp(width, height, 24, Pixels24), Name, "not a valid BMP image", size);

    [TestCase((ushort)0)]
    [TestCase((ushort)7)]
    [TestCase((ushort)64)]
    public void BitsPerPixelOutsideTheSetAreRefused(ushort bits) =>
        AssertRefused(Bmp(4, 4, bits, Pixels24), Name, $"{bits} bits per pixel is not one of");

    [Test]
    public void APalettedBmpWithoutAPaletteIsRefused()
    {
        AssertRefused(Bmp(4, 4, 8, new byte[16]), Name, "8 bits per pixel but room for only 0 of its 256 palette colors");
        AssertRefused(Bmp(4, 4, 8, new byte[16], colorsUsed: 300), Name, "300 palette colors");
    }

    [Test]
    public void PixelDataShorterThanTheHeaderClaimsIsRefused()
    {
        AssertRefused(Bmp(4096, 4096, 24, Pixels24), Name, "pixel data is truncated", "needs 50331648 bytes");
        AssertRefused(Bmp(4, 4, 24, Pixels24[..^1]), Name, "pixel data is truncated");
    }

    [Test]
    public void HeaderFieldsOutOfRangeAreRefused()
    {
        AssertRefused(Bmp(5000, 5000, 24, Pixels24), Name, "exceeds the limit of");
        AssertRefused(Bmp(4, 4, 24, Pixels24, pixelOffset: 1_000_000), Name, "pixel data offset 1000000");
        AssertRefused(Bmp(4, 4, 24, [])[..30], Name, "truncated");
    }
}
