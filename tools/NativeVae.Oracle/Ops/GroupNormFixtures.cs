using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Ops;

/// <summary>
/// <c>ops/group_norm/&lt;case&gt;.safetensors</c>: x <c>[N, C, H, W]</c>, gamma and beta <c>[C]</c>, y, and the side
/// outputs mean and rstd <c>[N, G]</c> (computed here in double from x, biased variance, stored as float).
/// Metadata: groups, eps, silu ("0"/"1"). Reference: F.group_norm, then F.silu when silu is "1".
/// </summary>
internal static class GroupNormFixtures
{
    private sealed record Case(string Name, int Batch, int Channels, int Height, int Width, int Groups, float Eps, bool Silu);

    /// <summary>
    /// Inputs are uniform in [-1.5, 1.5) + 0.5: a non-zero mean, so a kernel that skips the mean subtraction,
    /// or computes the variance as E[x^2] - E[x]^2 carelessly, shows.
    /// </summary>
    private const float InputAmplitude = 1.5f;
    private const float InputOffset = 0.5f;

    /// <summary>Affine jitter as in <see cref="NativeVae.Weights.SeededWeights"/>: gamma = 1 + 0.25 r, beta = 0.25 r.</summary>
    private const float AffineJitter = 0.25f;

    private static readonly Case[] Cases =
    [
        new("c96_g32_7x5", 1, 96, 7, 5, 32, 1e-6f, Silu: false),
        new("c96_g8_7x5_silu", 1, 96, 7, 5, 8, 1e-6f, Silu: true),
        new("c64_g4_5x3_eps1e-5", 1, 64, 5, 3, 4, 1e-5f, Silu: false),
        new("c32_g8_1x1_silu", 1, 32, 1, 1, 8, 1e-6f, Silu: true),
        new("c96_g32_batch2_3x7_silu_eps1e-5", 2, 96, 3, 7, 32, 1e-5f, Silu: true),
    ];

    public static IEnumerable<FixtureFile> Build(ulong seed)
    {
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            string stream = $"ops/group_norm/{c.Name}";
            var x = Torch.Uniform(seed, $"{stream}/x", [c.Batch, c.Channels, c.Height, c.Width], InputAmplitude, InputOffset);
            var gamma = Torch.Uniform(seed, $"{stream}/gamma", [c.Channels], AffineJitter, 1f);
            var beta = Torch.Uniform(seed, $"{stream}/beta", [c.Channels], AffineJitter);
            double eps = double.Parse(FixtureFile.Format(c.Eps), System.Globalization.CultureInfo.InvariantCulture);
            var y = F.group_norm(x, c.Groups, gamma, beta, eps);
            if (c.Silu) y = F.silu(y);
            var (mean, rstd) = Statistics(Torch.ToArray(x), c, eps);

            yield return new FixtureFile($"ops/group_norm/{c.Name}.safetensors")
                .Meta("groups", c.Groups)
                .Meta("eps", c.Eps)
                .Meta("silu", c.Silu)
                .Add("x", x)
                .Add("gamma", gamma)
                .Add("beta", beta)
                .Add("y", y)
                .Add("mean", Torch.FromArray(mean, c.Batch, c.Groups))
                .Add("rstd", Torch.FromArray(rstd, c.Batch, c.Groups));
        }
    }

    /// <summary>Per (sample, group) mean and 1/sqrt(biased variance + eps), two-pass in double.</summary>
    private static (float[] Mean, float[] Rstd) Statistics(float[] x, Case c, double eps)
    {
        int groupSize = c.Channels / c.Groups * c.Height * c.Width; // a group's channels are contiguous in NCHW
        var mean = new float[c.Batch * c.Groups];
        var rstd = new float[c.Batch * c.Groups];
        for (int g = 0; g < mean.Length; g++)
        {
            var values = x.AsSpan(g * groupSize, groupSize);
            double sum = 0;
            foreach (float v in values) sum += v;
            double m = sum / groupSize;
            double squares = 0;
            foreach (float v in values) squares += (v - m) * (v - m);
            mean[g] = (float)m;
            rstd[g] = (float)(1.0 / Math.Sqrt(squares / groupSize + eps));
        }
        return (mean, rstd);
    }
}
