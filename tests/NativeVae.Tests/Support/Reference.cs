namespace NativeVae.Tests.Support;

/// <summary>
/// Plain reference ops with double accumulators, written for obviousness, never optimised: the yardstick for the
/// kernel tests. Layouts as the backend: NCHW feature maps, weight [Cout, Cin, K, K].
/// </summary>
internal static class Reference
{
    /// <summary>Conv2d geometry: output size given explicitly (bottom/right padding is implied by it).</summary>
    public sealed record ConvGeometry(int Batch, int InChannels, int Height, int Width, int OutChannels, int Kernel,
        int Stride, int PadTop, int PadLeft, int OutHeight, int OutWidth, bool Upsample2x);

    public static double[] Conv2d(ConvGeometry g, float[] x, float[] weight, float[]? bias, float[]? residual)
    {
        int virtualHeight = g.Upsample2x ? 2 * g.Height : g.Height;
        int virtualWidth = g.Upsample2x ? 2 * g.Width : g.Width;
        int shift = g.Upsample2x ? 1 : 0;
        var y = new double[g.Batch * g.OutChannels * g.OutHeight * g.OutWidth];
        for (int n = 0; n < g.Batch; n++)
        for (int co = 0; co < g.OutChannels; co++)
        for (int oy = 0; oy < g.OutHeight; oy++)
        for (int ox = 0; ox < g.OutWidth; ox++)
        {
            double sum = bias is null ? 0 : bias[co];
            for (int ci = 0; ci < g.InChannels; ci++)
            for (int ky = 0; ky < g.Kernel; ky++)
            for (int kx = 0; kx < g.Kernel; kx++)
            {
                int iy = oy * g.Stride - g.PadTop + ky;
                int ix = ox * g.Stride - g.PadLeft + kx;
                if (iy < 0 || iy >= virtualHeight || ix < 0 || ix >= virtualWidth) continue;
                double input = x[((n * g.InChannels + ci) * g.Height + (iy >> shift)) * g.Width + (ix >> shift)];
                sum += input * weight[((co * g.InChannels + ci) * g.Kernel + ky) * g.Kernel + kx];
            }
            int o = ((n * g.OutChannels + co) * g.OutHeight + oy) * g.OutWidth + ox;
            if (residual is not null) sum += residual[o];
            y[o] = sum;
        }
        return y;
    }

    /// <summary>torch.group_norm (biased variance) then optional SiLU; also the per-(batch, group) mean and rstd.</summary>
    public static (double[] Y, double[] Mean, double[] Rstd) GroupNorm(float[] x, int batch, int channels, int spatial,
        int groups, double eps, float[] gamma, float[] beta, bool silu)
    {
        int perGroup = channels / groups * spatial;
        var y = new double[x.Length];
        var mean = new double[batch * groups];
        var rstd = new double[batch * groups];
        for (int g = 0; g < batch * groups; g++)
        {
            int begin = g * perGroup;
            double sum = 0;
            for (int i = 0; i < perGroup; i++) sum += x[begin + i];
            double m = sum / perGroup;
            double squares = 0;
            for (int i = 0; i < perGroup; i++) squares += (x[begin + i] - m) * (x[begin + i] - m);
            mean[g] = m;
            rstd[g] = 1 / Math.Sqrt(squares / perGroup + eps);
        }
        for (int i = 0; i < x.Length; i++)
        {
            int row = i / spatial;
            int c = row % channels;
            int g = row / channels * groups + c / (channels / groups);
            double v = (x[i] - mean[g]) * rstd[g] * gamma[c] + beta[c];
            y[i] = silu ? Silu(v) : v;
        }
        return (y, mean, rstd);
    }

    /// <summary>Single-head attention over channel-major [B, C, N]: a full softmax row per query.</summary>
    public static double[] Attention(float[] q, float[] k, float[] v, int batch, int channels, int tokens, double scale)
    {
        var y = new double[q.Length];
        var scores = new double[tokens];
        for (int b = 0; b < batch; b++)
        {
            int basis = b * channels * tokens;
            for (int i = 0; i < tokens; i++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < tokens; j++)
                {
                    double s = 0;
                    for (int c = 0; c < channels; c++) s += (double)q[basis + c * tokens + i] * k[basis + c * tokens + j];
                    scores[j] = s * scale;
                    max = Math.Max(max, scores[j]);
                }
                double total = 0;
                for (int j = 0; j < tokens; j++)
                {
                    scores[j] = Math.Exp(scores[j] - max);
                    total += scores[j];
                }
                for (int c = 0; c < channels; c++)
                {
                    double sum = 0;
                    for (int j = 0; j < tokens; j++) sum += scores[j] * v[basis + c * tokens + j];
                    y[basis + c * tokens + i] = sum / total;
                }
            }
        }
        return y;
    }

    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    public static double Relu(double x) => Math.Max(x, 0);

    public static double TanhClamp3(double x) => Math.Tanh(x / 3) * 3;
}
