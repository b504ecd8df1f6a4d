using NativeVae.Oracle.Tiling;
using static TorchSharp.torch;

namespace NativeVae.Oracle.Taef2;

/// <summary>
/// <c>models/taef2_blend.safetensors</c>: TAEF2 (real checkpoints) with diffusers' AutoencoderKL blend tiling at
/// sample_size 32 (latent tile 4), beside the untiled results. The project tiles every family this way, although
/// diffusers' AutoencoderTiny has a tiling of its own.
/// </summary>
internal static class Taef2BlendFixtures
{
    private const int SampleSize = 32;
    private const int DownsampleFactor = 8;

    /// <summary>
    /// 56x40 around the crop of models/taef2.safetensors. Encode: row tiles at 0, 24, 48 (the last 8 high),
    /// column tiles at 0, 24 (the last 16 wide). Decode of the 7x5 latent: tiles at 0, 3, 6 by 0, 3.
    /// </summary>
    private const int CropTop = 88;
    private const int CropLeft = 192;
    private const int CropHeight = 56;
    private const int CropWidth = 40;

    public static FixtureFile Build(string sharedRoot)
    {
        string imagePath = Path.Combine(sharedRoot, "images", "astronaut.png");
        using var oracle = Taef2Oracle.LoadShared(sharedRoot);
        using var scope = NewDisposeScope();
        const int latentTile = SampleSize / DownsampleFactor;

        var pixels = Taef2Fixtures.ReadCrop(imagePath, CropTop, CropLeft, CropHeight, CropWidth);
        var image = Torch.FromArray(pixels, 1, 3, CropHeight, CropWidth);                 // [1, 3, 56, 40] in [0, 1]
        var tiledLatent = BlendTilingOracle.Run(image, SampleSize, latentTile, oracle.Encode);
        var latent = oracle.Encode(image);                                                 // [1, 32, 7, 5]
        BlendFixtureReport.Compare("taef2_blend", "latent", tiledLatent, latent);

        var tiledSample = BlendTilingOracle.Run(latent, latentTile, SampleSize, oracle.Decode);
        var sample = oracle.Decode(latent);                                                // [1, 3, 56, 40]
        BlendFixtureReport.Compare("taef2_blend", "sample", tiledSample, sample);
        oracle.AssertAllUsed();

        // Real weights: tiling may leave seams, but both decodes must still reconstruct the image.
        double untiledPsnr = Taef2Fixtures.Psnr(image, sample.clamp(0, 1));
        double tiledPsnr = Taef2Fixtures.Psnr(image, tiledSample.clamp(0, 1));
        double seamPsnr = Taef2Fixtures.Psnr(sample.clamp(0, 1), tiledSample.clamp(0, 1));
        Console.WriteLine($"taef2_blend: reconstruction PSNR {untiledPsnr:F1} dB untiled, {tiledPsnr:F1} dB tiled decode; tiled vs untiled decode {seamPsnr:F1} dB");

        return new FixtureFile("models/taef2_blend.safetensors")
            .Meta("config_name", "taef2")
            .Meta("sample_size", SampleSize)
            .Meta("tile_overlap_factor", (float)BlendTilingOracle.OverlapFactor)
            .Meta("image", $"astronaut.png rows {CropTop}..{CropTop + CropHeight - 1}, columns {CropLeft}..{CropLeft + CropWidth - 1}, RGB / 255")
            .Add("input.image", image)
            .Add("blend.latent", tiledLatent)
            .Add("latent", latent)
            .Add("input.latent", latent)
            .Add("blend.sample", tiledSample)
            .Add("sample", sample);
    }
}
