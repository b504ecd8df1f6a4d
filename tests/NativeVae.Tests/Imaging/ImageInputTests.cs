using NativeVae.Imaging;
using NativeVae.Tests.Support;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tga;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using static NativeVae.Tests.Imaging.CraftedImages;

namespace NativeVae.Tests.Imaging;

/// <summary>Only the four formats are accepted, real images still load, and every failure has the one message shape.</summary>
public class ImageInputTests
{
    /// <summary>Wording that would mean a runtime or ImageSharp argument message reached the user.</summary>
    private static readonly string[] RawWording =
        ["Index was outside", "Object reference", "divide by zero", "(Parameter", "Parameter \"", "Arithmetic operation", "must be greater than"];

    [Test]
    public void EverySharedImageButTheTruncatedOneLoads()
    {
        string folder = TestPaths.RequireShared("images");
        var files = Directory.GetFiles(folder).Where(f => Path.GetFileName(f) != "truncated.jpg").ToArray();
        Assert.That(files, Is.Not.Empty);
        foreach (string file in files)
        {
            using var image = ImageInput.Load(file);
            Assert.That(image.Width * image.Height, Is.GreaterThan(0), file);
        }
    }

    [Test]
    public void GifTiffAndTgaAreRefusedByName()
    {
        AssertRefused(Encode(new GifEncoder()), "x.gif", "GIF images are not accepted");
        AssertRefused(Encode(new TiffEncoder()), "x.tif", "TIFF images are not accepted");
        AssertRefused(Encode(new TgaEncoder()), "x.tga", "not a PNG, JPEG, WebP or BMP image");
        AssertRefused([], "empty.png", "not a PNG, JPEG, WebP or BMP image");
    }

    /// <summary>Seeded byte mutations of each accepted format: each either loads or is refused with the one message shape.</summary>
    [TestCase("PNG")]
    [TestCase("JPEG")]
    [TestCase("WebP")]
    [TestCase("BMP")]
    public void MutatedImagesLoadOrFailWithOneMessage(string format)
    {
        const int Cases = 150;
        const int MutationSeed = 12;
        IImageEncoder encoder = format switch
        {
            "PNG" => new PngEncoder(),
            "JPEG" => new JpegEncoder(),
            "WebP" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
            _ => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel8 },
        };
        byte[] original = Encode(encoder, 24, 16);
        // A seed fixed per format (string hash codes change from run to run): CI runs the same cases every time; the
        // fuzzer (tools/NativeVae.Fuzz) runs new ones.
        var random = new Random(format.Aggregate(MutationSeed, (seed, c) => seed * 31 + c));
        for (int i = 0; i < Cases; i++)
        {
            byte[] file = (byte[])original.Clone();
            int flips = random.Next(1, 4);
            for (int f = 0; f < flips; f++)
            {
                // Mutate the headers more often than the body: that is where sizes and counts live.
                int at = random.Next(2) == 0 ? random.Next(Math.Min(64, file.Length)) : random.Next(file.Length);
                file[at] = random.Next(3) == 0 ? (byte)0 : random.Next(2) == 0 ? (byte)0xFF : (byte)random.Next(256);
            }
            if (random.Next(4) == 0) file = file[..random.Next(file.Length)];
            string name = $"case{i}.{format.ToLowerInvariant()}";
            try
            {
                ImageInput.Load(new MemoryStream(file), name).Dispose();
            }
            catch (InvalidDataException error)
            {
                Assert.That(error.Message, Does.StartWith($"{name}: "), error.Message);
                foreach (string raw in RawWording) Assert.That(error.Message, Does.Not.Contain(raw), error.Message);
            }
        }
    }
}
