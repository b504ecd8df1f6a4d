using System.Buffers.Binary;
using SixLabors.ImageSharp.Formats.Webp;
using static NativeVae.Tests.Imaging.CraftedImages;

namespace NativeVae.Tests.Imaging;

/// <summary>A WebP's RIFF and chunk sizes must fit the file.</summary>
public class WebpStructureTests
{
    private const string Name = "crafted.webp";

    [TestCase(WebpFileFormatType.Lossless)]
    [TestCase(WebpFileFormatType.Lossy)]
    public void RealWebpsLoad(WebpFileFormatType kind)
    {
        using var image = Load(Encode(new WebpEncoder { FileFormat = kind }, 13, 7), Name);
        Assert.That((image.Width, image.Height), Is.EqualTo((13, 7)));
    }

    [TestCase(WebpFileFormatType.Lossless)]
    [TestCase(WebpFileFormatType.Lossy)]
    public void AWebpCutShortIsRefused(WebpFileFormatType kind)
    {
        byte[] file = Encode(new WebpEncoder { FileFormat = kind }, 64, 48);
        AssertRefused(file[..^8], Name, "not a valid WebP image", "truncated", "RIFF header claims");
    }

    [Test]
    public void AChunkLongerThanTheRiffIsRefused()
    {
        byte[] file = Encode(new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }, 64, 48);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(16), (uint)file.Length);
        AssertRefused(file, Name, "truncated", "chunk 'VP8L' claims");
    }

    [Test]
    public void AFirstChunkThatIsNoImageIsRefused()
    {
        byte[] file = Encode(new WebpEncoder { FileFormat = WebpFileFormatType.Lossless }, 64, 48);
        "JUNK"u8.CopyTo(file.AsSpan(12));
        AssertRefused(file, Name, "first chunk is 'JUNK'");
    }
}
