using NativeVae.Weights;
using NativeVae.Loading;

namespace NativeVae.Api;

/// <summary>
/// diffusers' <c>DiagonalGaussianDistribution</c> over moments <c>[N, 2C, h, w]</c> = (mean, logvar) along channels:
/// the mode is the mean; a sample is <c>mean + exp(0.5 * clamp(logvar, -30, 20)) * eps</c>, eps ~ N(0, 1).
/// </summary>
internal static class LatentDistribution
{
    private const float LogVarMin = -30f;
    private const float LogVarMax = 20f;

    public static HostTensor<float> Mode(HostTensor<float> moments) => Split(moments, null);

    /// <summary>A sample with eps drawn from a seeded generator (SplitMix64 + Box-Muller; not torch's generator).</summary>
    public static HostTensor<float> Sample(HostTensor<float> moments, ulong seed) => Split(moments, new GaussianStream(seed));

    private static HostTensor<float> Split(HostTensor<float> moments, GaussianStream? noise)
    {
        var s = moments.Shape;
        if (s.Rank != 4 || s.C % 2 != 0) throw new ArgumentException($"moments must be [N, 2C, h, w], got {s}");
        int c = s.C / 2;
        long plane = (long)s.H * s.W;
        var result = new HostTensor<float>(TensorShape.Nchw(s.N, c, s.H, s.W));
        for (int n = 0; n < s.N; n++)
        {
            long meanStart = (long)n * s.C * plane;
            long logVarStart = meanStart + c * plane;
            long outStart = (long)n * c * plane;
            for (long i = 0; i < c * plane; i++)
            {
                float mean = moments.Data[meanStart + i];
                if (noise is null)
                {
                    result.Data[outStart + i] = mean;
                    continue;
                }
                float logVar = Math.Clamp(moments.Data[logVarStart + i], LogVarMin, LogVarMax);
                result.Data[outStart + i] = mean + MathF.Exp(0.5f * logVar) * noise.Next();
            }
        }
        return result;
    }

    /// <summary>Standard normal draws: SplitMix64 uniforms through the Box-Muller transform.</summary>
    private sealed class GaussianStream(ulong seed)
    {
        private SplitMix64 _random = new(seed);
        private float? _spare;

        public float Next()
        {
            if (_spare is { } s)
            {
                _spare = null;
                return s;
            }
            double u1 = 1.0 - _random.NextDouble();   // (0, 1]: log is finite
            double u2 = _random.NextDouble();
            double radius = Math.Sqrt(-2.0 * Math.Log(u1));
            _spare = (float)(radius * Math.Sin(2 * Math.PI * u2));
            return (float)(radius * Math.Cos(2 * Math.PI * u2));
        }
    }
}
