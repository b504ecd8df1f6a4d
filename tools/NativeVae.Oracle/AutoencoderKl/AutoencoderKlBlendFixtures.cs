using System.Globalization;
using NativeVae.Core;
using NativeVae.Models.AutoencoderKl;
using NativeVae.Oracle.Tiling;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;
using static TorchSharp.torch;

namespace NativeVae.Oracle.AutoencoderKl;

/// <summary>
/// <c>models/{small,sd}_blend.safetensors</c>: diffusers' blend-tiled encode and decode (<see cref="BlendTilingOracle"/>)
/// beside the untiled result of the same input, with a <c>sample_size</c> far below the preset's so that small
/// inputs span several tiles. Weights are seeded as in <see cref="AutoencoderKlFixtures"/> and not stored.
/// </summary>
internal static class AutoencoderKlBlendFixtures
{
    /// <summary>One fixture: config, blend tile (diffusers' sample_size) and the image and latent sizes.</summary>
    private sealed record Case(string Name, AutoencoderKlConfig Config, int SampleSize, int ImageHeight, int ImageWidth, int LatentHeight, int LatentWidth);

    private const float LatentAmplitude = 2f;

    private static readonly Case[] Cases =
    [
        // f = 2, latent tile 4. Image: 3x4 tiles, the last row and column 3 pixels (1 latent row/column).
        // Latent: 3x3 tiles of stride 3, the last column 1 latent column wide (2 pixels).
        new("small", AutoencoderKlConfig.Small, 8, 15, 21, 9, 7),
        // f = 8, latent tile 2: blend extent 0 on encode (no blending, and a 20-wide image gives 3 latent columns
        // tiled but 2 untiled); stride 1 on decode (9 tiles, 32x32 tiled against 24x24 untiled). diffusers'
        // arithmetic, kept as it is.
        new("sd", AutoencoderKlConfig.Sd, 16, 24, 20, 3, 3),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases) yield return Build(c, seed);
    }

    private static FixtureFile Build(Case c, ulong seed)
    {
        var parameters = AutoencoderKlParameters.Enumerate(c.Config);
        int latentTile = c.SampleSize / c.Config.DownsampleFactor;
        var file = new FixtureFile($"models/{c.Name}_blend.safetensors")
            .Meta("config_name", c.Name)
            .Meta("seed", seed.ToString(CultureInfo.InvariantCulture))
            .Meta("sample_size", c.SampleSize)
            .Meta("tile_overlap_factor", (float)BlendTilingOracle.OverlapFactor);

        using var weights = new CheckedWeights(InMemoryWeights.Seeded(seed, parameters));
        using (var scope = NewDisposeScope())
        {
            // The fixture keeps only inputs and final outputs, not the per-stage captures of models/*.safetensors.
            var model = new AutoencoderKlOracle(c.Config, weights, (_, _) => { });

            var image = Torch.Uniform(seed, "input.image", [1, c.Config.InChannels, c.ImageHeight, c.ImageWidth]);
            var tiledMoments = BlendTilingOracle.Run(image, c.SampleSize, latentTile, model.EncodeMoments);
            var moments = model.EncodeMoments(image);
            BlendFixtureReport.Compare($"{c.Name}_blend", "moments", tiledMoments, moments);
            file.Add("input.image", image).Add("blend.moments", tiledMoments).Add("moments", moments);

            var latent = Torch.Uniform(seed, "input.latent", [1, c.Config.LatentChannels, c.LatentHeight, c.LatentWidth], LatentAmplitude);
            var tiledSample = BlendTilingOracle.Run(latent, latentTile, c.SampleSize, model.Decode);
            var sample = model.Decode(latent);
            BlendFixtureReport.Compare($"{c.Name}_blend", "sample", tiledSample, sample);
            file.Add("input.latent", latent).Add("blend.sample", tiledSample).Add("sample", sample);
        }
        weights.AssertAllUsed();
        return file;
    }
}
