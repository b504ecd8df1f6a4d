using NativeVae.Weights;

namespace NativeVae.Tests.Tiling;

/// <summary>
/// Stand-ins for a VAE's encoder and decoder that are local and fast, for testing where blend tiling puts tiles:
/// encode averages each factor x factor block (a partial block at the far edge averages what it has, so a side
/// rounds up as TAESD's does), decode repeats each latent factor x factor times.
/// </summary>
internal static class FakeTileModels
{
    /// <summary>Pixels per latent of every published VAE.</summary>
    public const int Factor = 8;

    /// <summary>[N, C, H, W] -> [N, C, ceil(H / factor), ceil(W / factor)], each element its block's mean.</summary>
    public static HostTensor<float> AveragePool(HostTensor<float> x, int factor = Factor)
    {
        var s = x.Shape;
        int h = (s.H + factor - 1) / factor, w = (s.W + factor - 1) / factor;
        var result = new HostTensor<float>(TensorShape.Nchw(s.N, s.C, h, w));
        ForEach(result.Shape, (plane, y, xo) =>
        {
            double sum = 0;
            int count = 0;
            for (int dy = 0; dy < factor && y * factor + dy < s.H; dy++)
            {
                for (int dx = 0; dx < factor && xo * factor + dx < s.W; dx++, count++)
                    sum += x.Data[((long)plane * s.H + y * factor + dy) * s.W + xo * factor + dx];
            }
            return (float)(sum / count);
        }, result);
        return result;
    }

    /// <summary>[N, C, h, w] -> [N, C, h * factor, w * factor], each latent repeated over its block.</summary>
    public static HostTensor<float> NearestUpsample(HostTensor<float> x, int factor = Factor)
    {
        var s = x.Shape;
        var result = new HostTensor<float>(TensorShape.Nchw(s.N, s.C, s.H * factor, s.W * factor));
        ForEach(result.Shape, (plane, y, xo) => x.Data[((long)plane * s.H + y / factor) * s.W + xo / factor], result);
        return result;
    }

    /// <summary>Adds the tile's own mean to every output, so that overlapping tiles disagree and blending shows.</summary>
    public static Func<HostTensor<float>, HostTensor<float>> PlusTileMean(Func<HostTensor<float>, HostTensor<float>> run) => tile =>
    {
        var result = run(tile);
        float mean = (float)tile.Data.Average(v => (double)v);
        for (int i = 0; i < result.Data.Length; i++) result.Data[i] += mean;
        return result;
    };

    /// <summary>A [1, channels, h, w] tensor of seeded values in [-1, 1).</summary>
    public static HostTensor<float> Random(int channels, int h, int w, string stream) =>
        new(TensorShape.Nchw(1, channels, h, w), SeededWeights.Uniform(SeededWeights.DefaultSeed, stream, channels * h * w));

    private static void ForEach(TensorShape shape, Func<int, int, int, float> value, HostTensor<float> into)
    {
        for (int plane = 0; plane < shape.N * shape.C; plane++)
            for (int y = 0; y < shape.H; y++)
                for (int x = 0; x < shape.W; x++)
                    into.Data[((long)plane * shape.H + y) * shape.W + x] = value(plane, y, x);
    }
}
