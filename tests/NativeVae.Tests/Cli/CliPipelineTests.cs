using System.Globalization;
using NativeVae.Imaging;
using NativeVae.Tests.Support;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using static NativeVae.Tests.Cli.CliRun;

namespace NativeVae.Tests.Cli;

/// <summary>encode, decode and roundtrip end to end with the real TAEF2 weights from ../shared.</summary>
public class CliPipelineTests
{
    /// <summary>TAEF2 reconstructs photographs at about 28 dB; a wiring error gives far less.</summary>
    private const double MinimumPsnr = 22.0;

    private string _folder = "";

    [SetUp]
    public void CreateFolder() => _folder = Directory.CreateTempSubdirectory("nativevae-cli-").FullName;

    [TearDown]
    public void DeleteFolder() => Directory.Delete(_folder, recursive: true);

    /// <summary>A 72x56 crop of astronaut.png (odd multiples of 8) written as PNG.</summary>
    private string Crop() => Crop(72, 56);

    private string Crop(int width, int height)
    {
        using var image = Image.Load<Rgb24>(TestPaths.RequireShared("images/astronaut.png"));
        image.Mutate(c => c.Crop(new Rectangle(200, 100, width, height)));
        string path = Path.Combine(_folder, $"crop{width}x{height}.png");
        image.SaveAsPng(path);
        return path;
    }

    private static double ParsePsnr(string stdout)
    {
        var line = stdout.Split('\n').Single(l => l.StartsWith("psnr_db=", StringComparison.Ordinal));
        return double.Parse(line["psnr_db=".Length..], CultureInfo.InvariantCulture);
    }

    [Test]
    public void RoundtripPrintsPsnrAndExactTilingWritesTheSameImage()
    {
        string model = TestPaths.RequireShared("models/taef2");
        string input = Crop();
        string whole = Path.Combine(_folder, "whole.png");
        string tiled = Path.Combine(_folder, "tiled.png");

        var (code, stdout, stderr) = Run("roundtrip", input, "--model", model, "-o", whole, "--tiling", "none");
        Assert.That(code, Is.Zero, stderr);
        double psnr = ParsePsnr(stdout);
        TestContext.Out.WriteLine(stdout);
        Assert.That(psnr, Is.GreaterThan(MinimumPsnr));

        (code, stdout, stderr) = Run("roundtrip", input, "--model", model, "-o", tiled, "--tiling", "exact", "--tile", "16");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(ParsePsnr(stdout), Is.EqualTo(psnr).Within(0.05));

        using var a = Image.Load<Rgb24>(whole);
        using var b = Image.Load<Rgb24>(tiled);
        var pa = ImageInput.ToBytes(a);
        var pb = ImageInput.ToBytes(b);
        int maxDiff = pa.Zip(pb, (x, y) => Math.Abs(x - y)).Max();
        Assert.That(maxDiff, Is.LessThanOrEqualTo(1), "exact tiling changes a pixel by at most one rounding step");
    }

    [TestCase("bf16")]
    [TestCase("fp16")]
    public void RoundtripIn16BitStorageStaysCloseToFp32(string dtype)
    {
        string model = TestPaths.RequireShared("models/taef2");
        string input = Crop();
        var (code, stdout, stderr) = Run("roundtrip", input, "--model", model, "-o", Path.Combine(_folder, "fp32.png"), "--device", "cpu");
        Assert.That(code, Is.Zero, stderr);
        double full = ParsePsnr(stdout);
        (code, stdout, stderr) = Run("roundtrip", input, "--model", model, "-o", Path.Combine(_folder, dtype + ".png"), "--device", "cpu",
            "--dtype", dtype);
        Assert.That(code, Is.Zero, stderr);
        TestContext.Out.WriteLine($"fp32 {full:F3} dB, {dtype} {ParsePsnr(stdout):F3} dB");
        Assert.That(ParsePsnr(stdout), Is.EqualTo(full).Within(0.1), $"--dtype {dtype} round trip against fp32");
    }

    [Test]
    public void EncodeThenDecodeEqualsRoundtrip()
    {
        string model = TestPaths.RequireShared("models/taef2");
        string input = Crop();
        string latent = Path.Combine(_folder, "crop.latent.safetensors");
        string decoded = Path.Combine(_folder, "decoded.png");
        string round = Path.Combine(_folder, "round.png");

        var (code, stdout, stderr) = Run("encode", input, "--model", model, "-o", latent);
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("[1, 32, 7, 9]"));
        (code, _, stderr) = Run("decode", latent, "--model", model, "-o", decoded);
        Assert.That(code, Is.Zero, stderr);
        (code, _, stderr) = Run("roundtrip", input, "--model", model, "-o", round);
        Assert.That(code, Is.Zero, stderr);
        using var a = Image.Load<Rgb24>(decoded);
        using var b = Image.Load<Rgb24>(round);
        Assert.That(ImageInput.ToBytes(a), Is.EqualTo(ImageInput.ToBytes(b)));
    }

    [Test]
    public void BlendEncodeKeepsTheSizeAndRefusesATileTheFamilyCannotUse()
    {
        // The case: --tile 100 used to return a latent of the wrong size with exit 0.
        string model = TestPaths.RequireShared("models/taef2");
        string input = Crop(200, 136);
        string latent = Path.Combine(_folder, "blend.latent.safetensors");
        var (code, stdout, stderr) = Run("encode", input, "--model", model, "-o", latent, "--tiling", "blend", "--tile", "128");
        Assert.That(code, Is.Zero, stderr);
        Assert.That(stdout, Does.Contain("[1, 32, 17, 25]"));

        string refused = Path.Combine(_folder, "refused.latent.safetensors");
        (code, _, stderr) = Run("encode", input, "--model", model, "-o", refused, "--tiling", "blend", "--tile", "100");
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), stderr);
        Assert.That(stderr, Does.Contain("blend tile 100: TAESD-family blend tiles must be multiples of 64"));
        Assert.That(File.Exists(refused), Is.False);
    }

    [Test]
    public void BadImageFailsWithOneLineAndWritesNothing()
    {
        string model = TestPaths.RequireShared("models/taef2");
        string output = Path.Combine(_folder, "never.safetensors");
        var (code, stdout, stderr) = Run("encode", TestPaths.RequireShared("images/truncated.jpg"), "--model", model, "-o", output);
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr.Trim().Split('\n'), Has.Length.EqualTo(1), stderr);
        Assert.That(stderr, Does.Contain("truncated.jpg"));
        Assert.That(File.Exists(output), Is.False);
        Assert.That(Directory.GetFiles(_folder), Is.Empty, "no temporary file left behind");
    }

    [Test]
    public void PackedLatentsWithoutSizeFailLikeDiffusers()
    {
        string model = TestPaths.RequireShared("models/taef2");
        string latent = Path.Combine(_folder, "packed.safetensors");
        NativeVae.Formats.SafeTensors.SafeTensorsWriter.Write(latent,
            [NativeVae.Formats.SafeTensors.SafeTensorToWrite.FromFloat32("latent", new NativeVae.TensorShape(1, 4, 128), new float[512])]);
        var (code, _, stderr) = Run("decode", latent, "--model", model, "-o", Path.Combine(_folder, "x.png"));
        Assert.That(code, Is.Not.Zero);
        Assert.That(stderr, Does.Contain("`height` and `width` required for packed latents."));
    }
}
