using NativeVae.Tests.Support;
using SixLabors.ImageSharp.Formats.Jpeg;
using static NativeVae.Tests.Imaging.CraftedImages;

namespace NativeVae.Tests.Imaging;

/// <summary>JPEGs must reach their end-of-image marker, with a non-zero frame size.</summary>
public class JpegStructureTests
{
    private const string Name = "crafted.jpg";

    [Test]
    public void AJpegCutShortIsRefused()
    {
        byte[] file = Encode(new JpegEncoder(), 64, 48);
        Load(file, Name).Dispose();
        AssertRefused(file[..^2], Name, "not a valid JPEG image", "truncated", "FF D9");
        AssertRefused(file[..(file.Length * 2 / 3)], Name, "truncated");
    }

    [Test]
    public void TheSharedTruncatedPhotographIsRefused()
    {
        string path = TestPaths.RequireShared("images/truncated.jpg");
        var error = Assert.Throws<InvalidDataException>(() => NativeVae.Imaging.ImageInput.Load(path).Dispose())!;
        Assert.That(error.Message, Does.StartWith($"{path}: not a valid JPEG image").And.Contain("truncated"));
    }

    [TestCase(0, 48)]
    [TestCase(64, 0)]
    public void AZeroFrameSizeIsRefused(int width, int height)
    {
        byte[] file = Encode(new JpegEncoder(), 64, 48);
        int sof = FindMarker(file, 0xC0);
        file[sof + 5] = (byte)(height >> 8);
        file[sof + 6] = (byte)height;
        file[sof + 7] = (byte)(width >> 8);
        file[sof + 8] = (byte)width;
        AssertRefused(file, Name, $"{width}x{height}", "must be positive");
    }

    [Test]
    public void TrailingBytesAfterTheEndMarkerAreAccepted()
    {
        byte[] file = [.. Encode(new JpegEncoder(), 64, 48), 0, 0, 0, 0];
        using var image = Load(file, Name);
        Assert.That(image.Width, Is.EqualTo(64));
    }

    /// <summary>The offset of the first FF <paramref name="code"/> marker.</summary>
    private static int FindMarker(byte[] file, byte code)
    {
        for (int i = 0; i + 1 < file.Length; i++)
        {
            if (file[i] == 0xFF && file[i + 1] == code) return i;
        }
        throw new AssertionException($"no FF {code:X2} marker");
    }
}
