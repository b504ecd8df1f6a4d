using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace NativeVae.Oracle.Taef2;

/// <summary>
/// <c>models/taef2.safetensors</c>: a crop of ../shared/images/astronaut.png, its TAEF2 latent, and the decoder
/// applied to that latent, from the real checkpoints in ../shared/models/taef2 (which are not committed).
/// </summary>
internal static class Taef2Fixtures
{
    /// <summary>32x24 (H != W) around the astronaut's eyes: skin, eyes and hair, so the latent is not flat.</summary>
    private const int CropTop = 96;
    private const int CropLeft = 200;
    private const int CropHeight = 32;
    private const int CropWidth = 24;
    private const float MaxByte = 255f;

    public static FixtureFile Build(string sharedRoot)
    {
        string imagePath = Path.Combine(sharedRoot, "images", "astronaut.png");
        using var oracle = Taef2Oracle.LoadShared(sharedRoot);
        using var scope = NewDisposeScope();

        var image = Torch.FromArray(ReadCrop(imagePath, CropTop, CropLeft, CropHeight, CropWidth), 1, 3, CropHeight, CropWidth);   // [1, 3, 32, 24] in [0, 1]
        var latent = oracle.Encode(image);                                               // [1, 32, 4, 3]
        var decoded = oracle.Decode(latent);                                             // [1, 3, 32, 24]
        oracle.AssertAllUsed();

        // A wrong architecture still produces numbers; a reconstruction close to the input shows it is TAEF2.
        double psnr = Psnr(image, decoded.clamp(0, 1));
        Console.WriteLine($"taef2: reconstruction PSNR {psnr:F1} dB on the {CropHeight}x{CropWidth} crop");

        return new FixtureFile("models/taef2.safetensors")
            .Meta("config_name", "taef2")
            .Meta("image", $"astronaut.png rows {CropTop}..{CropTop + CropHeight - 1}, columns {CropLeft}..{CropLeft + CropWidth - 1}, RGB / 255")
            .Add("input.image", image)
            .Add("encoder.output", latent)
            .Add("decoder.output", decoded);
    }

    /// <summary>Peak signal-to-noise ratio in dB for images in [0, 1].</summary>
    public static double Psnr(Tensor expected, Tensor actual)
    {
        double mse = (expected - actual).square().mean().item<float>();
        return 10 * Math.Log10(1 / mse);
    }

    /// <summary>A crop as planar RGB <c>[3, height, width]</c> in [0, 1].</summary>
    public static float[] ReadCrop(string path, int top, int left, int height, int width)
    {
        using var png = Image.Load<Rgb24>(path);
        if (png.Height < top + height || png.Width < left + width)
            throw new InvalidDataException($"{path}: {png.Width}x{png.Height} is too small for a {width}x{height} crop at ({left}, {top})");
        int plane = height * width;
        var values = new float[3 * plane];
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                Rgb24 pixel = png[left + x, top + y];
                int at = y * width + x;
                values[at] = pixel.R / MaxByte;
                values[plane + at] = pixel.G / MaxByte;
                values[2 * plane + at] = pixel.B / MaxByte;
            }
        }
        return values;
    }
}
