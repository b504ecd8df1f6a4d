using NativeVae.Backends;

namespace NativeVae.Tests.Support;

/// <summary>
/// Plain reference implementations of the backend ops with double accumulators, written for clarity, never
/// optimised. Layouts follow IBackend: [N, C, H, W] row-major.
/// </summary>
internal static class ReferenceOps
{
    public static float[] Conv2d(float[] x, int n, int cin, int h, int w, float[] weight, int cout, int k,
        float[]? bias, Conv2dSpec spec, float[]? residual, out int ho, out int wo)
    {
        int hv = spec.Upsample2x ? 2 * h : h, wv = spec.Upsample2x ? 2 * w : w;
        ho = spec.OutputHeight(h, k);
        wo = spec.OutputWidth(w, k);
        var y = new float[n * cout * ho * wo];
        for (int b = 0; b < n; b++)
        for (int co = 0; co < cout; co++)
        for (int oy = 0; oy < ho; oy++)
        for (int ox = 0; ox < wo; ox++)
        {
            double acc = 0;
            for (int ci = 0; ci < cin; ci++)
            for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
            {
                int yv = oy * spec.Stride - spec.PadTop + ky, xv = ox * spec.Stride - spec.PadLeft + kx;
                if (yv < 0 || yv >= hv || xv < 0 || xv >= wv) continue;
                int iy = spec.Upsample2x ? yv / 2 : yv, ix = spec.Upsample2x ? xv / 2 : xv;
                acc += (double)x[((b * cin + ci) * h + iy) * w + ix] * weight[((co * cin + ci) * k + ky) * k + kx];
            }
            int o = ((b * cout + co) * ho + oy) * wo + ox;
            if (bias is not null) acc += bias[co];
            if (residual is not null) acc += residual[o];
            y[o] = (float)acc;
        }
        return y;
    }

    /// <summary>GroupNorm (+SiLU); <paramref name="stats"/> gets (mean, rstd) per (image, group).</summary>
    public static float[] GroupNorm(float[] x, int n, int c, int spatial, int groups, float[] gamma, float[] beta,
        double eps, bool silu, out double[] stats)
    {
        var y = new float[x.Length];
        stats = new double[n * groups * 2];
        int cpg = c / groups;
        for (int b = 0; b < n; b++)
        for (int g = 0; g < groups; g++)
        {
            int start = (b * c + g * cpg) * spatial, count = cpg * spatial;
            double mean = 0;
            for (int i = 0; i < count; i++) mean += x[start + i];
            mean /= count;
            double variance = 0;
            for (int i = 0; i < count; i++) variance += (x[start + i] - mean) * (x[start + i] - mean);
            variance /= count;
            double rstd = 1 / Math.Sqrt(variance + eps);
            stats[2 * (b * groups + g)] = mean;
            stats[2 * (b * groups + g) + 1] = rstd;
            for (int i = 0; i < count; i++)
            {
                int ch = g * cpg + i / spatial;
                double v = (x[start + i] - mean) * rstd * gamma[ch] + beta[ch];
                y[start + i] = (float)(silu ? Silu(v) : v);
            }
        }
        return y;
    }

    /// <summary>softmax(scale q^T k) v over channel-major [B, C, N] tensors.</summary>
    public static float[] Attention(float[] q, float[] k, float[] v, int batch, int c, int tokens, double scale)
    {
        var y = new float[q.Length];
        var logits = new double[tokens];
        for (int b = 0; b < batch; b++)
        {
            int plane = b * c * tokens;
            for (int i = 0; i < tokens; i++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < tokens; j++)
                {
                    double dot = 0;
                    for (int ch = 0; ch < c; ch++) dot += (double)q[plane + ch * tokens + i] * k[plane + ch * tokens + j];
                    logits[j] = dot * scale;
                    max = Math.Max(max, logits[j]);
                }
                double sum = 0;
                for (int j = 0; j < tokens; j++) sum += logits[j] = Math.Exp(logits[j] - max);
                for (int ch = 0; ch < c; ch++)
                {
                    double acc = 0;
                    for (int j = 0; j < tokens; j++) acc += logits[j] * v[plane + ch * tokens + j];
                    y[plane + ch * tokens + i] = (float)(acc / sum);
                }
            }
        }
        return y;
    }

    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    public static double Unary(UnaryOp op, double x) => op switch
    {
        UnaryOp.Silu => Silu(x),
        UnaryOp.Relu => Math.Max(x, 0),
        UnaryOp.TanhClamp3 => Math.Tanh(x / 3) * 3,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    };
}
