using NativeVae.Models.QwenImage;
using NativeVae.Oracle.QwenImage;
using NativeVae.Weights;
using static TorchSharp.torch;

namespace NativeVae.Oracle.Wan;

/// <summary>
/// <c>models/wan_*.safetensors</c>, <c>models/wan22_*.safetensors</c>: AutoencoderKLWan (Wan 2.1, and Wan 2.2 with
/// is_residual) on video through <see cref="WanVideoOracle"/>:
/// <c>input.video</c> [B, 3, T, H, W] and its <c>moments</c> [B, 2z, T', h, w]; <c>input.latent</c> [B, z, T', h, w]
/// and its <c>sample</c> [B, 3, 1 + (T' - 1) * 4, H, W].
/// </summary>
internal static class WanVideoFixtures
{
    private sealed record Case(string Name, QwenImageConfig Config, int Batch, int Frames, int Height, int Width);

    private const float LatentAmplitude = 2f;

    /// <summary>Wan 2.1's shape in small: two temporal levels (4 frames per latent frame), /4 in space.</summary>
    public static QwenImageConfig Small { get; } = new()
    {
        BaseDim = 8,
        ZDim = 4,
        DimMult = [1, 2, 2],
        NumResBlocks = 1,
        TemporalDownsample = [true, true],
        LatentsMean = [0.25f, -0.5f, 0.125f, 1f],
        LatentsStd = [1.5f, 0.75f, 2f, 1.25f],
    };

    /// <summary>
    /// Wan 2.2's shape in miniature: its four levels with temporal downsampling on the middle two, residual blocks, a
    /// decoder base unlike the encoder's (6 against 4, as 256 against 160) whose third level halves the channels
    /// (DupUp3D repeats 2), the 2x2 patchify: /16 in space, 4 frames per latent frame.
    /// </summary>
    public static QwenImageConfig Small22 { get; } = new()
    {
        BaseDim = 4,
        DecoderBaseDim = 6,
        ZDim = 4,
        DimMult = [1, 2, 4, 4],
        NumResBlocks = 1,
        TemporalDownsample = [false, true, true],
        IsResidual = true,
        PatchSize = 2,
        LatentsMean = [0.25f, -0.5f, 0.125f, 1f],
        LatentsStd = [1.5f, 0.75f, 2f, 1.25f],
    };

    private static readonly Case[] Cases =
    [
        new("wan_small_t1", Small, 1, 1, 12, 20),
        new("wan_small_t5", Small, 2, 5, 12, 20),
        new("wan_small_t9", Small, 1, 9, 12, 20),
        // 11 frames: diffusers drops the 2 past the last whole chunk, so the moments are those of 9.
        new("wan_small_t11", Small, 1, 11, 8, 12),
        // The real Wan 2.1 config at 64x64, 5 frames.
        new("wan_t5", QwenImageConfig.QwenImage, 1, 5, 64, 64),
        new("wan22_small_t1", Small22, 1, 1, 32, 48),
        new("wan22_small_t5", Small22, 2, 5, 32, 48),
        new("wan22_small_t9", Small22, 1, 9, 16, 32),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases) yield return Build(c, seed);
    }

    private static FixtureFile Build(Case c, ulong seed)
    {
        var config = c.Config;
        var parameters = QwenImageParameters.Enumerate(config);
        var file = FixtureFile.Model(c.Name, seed, QwenImageFixtures.DiffusersConfigJson(config, "AutoencoderKLWan"), parameters);
        using var weights = new CheckedWeights(InMemoryWeights.Seeded(seed, parameters));
        using (var scope = NewDisposeScope())
        {
            var video = Torch.Uniform(seed, "input.video", [c.Batch, config.InputChannels, c.Frames, c.Height, c.Width]);
            file.Add("input.video", video);
            file.Add("moments", new WanVideoOracle(config, weights).EncodeMoments(video).contiguous());

            int f = config.DownsampleFactor, latentFrames = config.LatentFrames(c.Frames);
            var latent = Torch.Uniform(seed, "input.latent", [c.Batch, config.ZDim, latentFrames, c.Height / f, c.Width / f], LatentAmplitude);
            file.Add("input.latent", latent);
            file.Add("sample", new WanVideoOracle(config, weights).Decode(latent).contiguous());
        }
        if (c.Frames > 1) weights.AssertAllUsed();
        return file;
    }
}
