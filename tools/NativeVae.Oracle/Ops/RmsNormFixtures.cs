using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Ops;

/// <summary>
/// <c>ops/rms_norm/&lt;case&gt;.safetensors</c>: x <c>[N, C, H, W]</c>, gamma <c>[C]</c>, y. Metadata: silu ("0"/"1").
/// Reference: diffusers' <c>QwenImageRMS_norm</c> (Wan's <c>RMS_norm</c>) as it runs on an fp32 feature map,
/// <c>F.normalize(x, dim=1) * C ** 0.5 * gamma</c> with gamma <c>[C, 1, 1]</c> and no bias, then F.silu.
/// </summary>
internal static class RmsNormFixtures
{
    private sealed record Case(string Name, int Batch, int Channels, int Height, int Width, bool Silu, bool ZeroPixel = false);

    /// <summary>Inputs uniform in [-1.5, 1.5) + 0.5, as the GroupNorm fixtures: a mean the norm must not remove.</summary>
    private const float InputAmplitude = 1.5f;
    private const float InputOffset = 0.5f;

    /// <summary>gamma = 1 + 0.25 r, as <see cref="NativeVae.Weights.SeededWeights"/> draws norm weights.</summary>
    private const float GammaJitter = 0.25f;

    private static readonly Case[] Cases =
    [
        new("c96_7x5", 1, 96, 7, 5, Silu: false),
        new("c96_7x5_silu", 1, 96, 7, 5, Silu: true),
        new("c5_3x11_silu", 1, 5, 3, 11, Silu: true),
        new("c384_batch2_3x2", 2, 384, 3, 2, Silu: false),
        // A pixel whose channels are all zero: F.normalize floors the norm at 1e-12 and gives zeros, not NaN.
        new("c16_4x4_zero_pixel_silu", 1, 16, 4, 4, Silu: true, ZeroPixel: true),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            string stream = $"ops/rms_norm/{c.Name}";
            var x = Torch.Uniform(seed, $"{stream}/x", [c.Batch, c.Channels, c.Height, c.Width], InputAmplitude, InputOffset);
            if (c.ZeroPixel) x[.., .., 1, 2] = zeros(c.Batch, c.Channels);
            var gamma = Torch.Uniform(seed, $"{stream}/gamma", [c.Channels], GammaJitter, 1f);
            var y = F.normalize(x, dim: 1) * Math.Sqrt(c.Channels) * gamma.view(-1, 1, 1);
            if (c.Silu) y = F.silu(y);
            yield return new FixtureFile($"ops/rms_norm/{c.Name}.safetensors")
                .Meta("silu", c.Silu)
                .Add("x", x)
                .Add("gamma", gamma)
                .Add("y", y);
        }
    }
}
