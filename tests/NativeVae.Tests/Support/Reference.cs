using NativeVae.Core;

namespace NativeVae.Tests.Support;

/// <summary>
/// The one plain reference of every backend op, with double accumulators, written for obviousness, never optimised:
/// the yardstick for the op tests of every backend, and (through <see cref="ReferenceBackend"/>) for the models'
/// graphs. Layouts as <see cref="IBackend"/>: NCHW feature maps, weight [Cout, Cin, K, K].
/// </summary>
internal static class Reference
{
    /// <summary>Conv2d geometry: output size given explicitly (bottom/right padding is implied by it).</summary>
    public sealed record ConvGeometry(int Batch, int InChannels, int Height, int Width, int OutChannels, int Kernel,
        int Stride, int PadTop, int PadLeft, int OutHeight, int OutWidth, bool Upsample2x)
    {
        public static ConvGeometry Of(int batch, int inChannels, int height, int width, int outChannels, int kernel,
            Conv2dSpec spec) =>
            new(batch, inChannels, height, width, outChannels, kernel, spec.Stride, spec.PadTop, spec.PadLeft,
                spec.OutputHeight(height, kernel), spec.OutputWidth(width, kernel), spec.Upsample2x);
    }

    /// <summary><c>y = conv(x) + bias + residual</c>, the input read nearest-upsampled 2x when the geometry says so.</summary>
    public static double[] Conv2d(ConvGeometry g, float[] x, float[] weight, float[]? bias, float[]? residual)
    {
        int virtualHeight = g.Upsample2x ? 2 * g.Height : g.Height;
        int virtualWidth = g.Upsample2x ? 2 * g.Width : g.Width;
        int shift = g.Upsample2x ? 1 : 0;
        int plane = g.OutHeight * g.OutWidth;
        var y = new double[g.Batch * g.OutChannels * plane];
        // One output plane at a time, one weight tap at a time: the TAESD graph tests run real-sized convs on this.
        for (int n = 0; n < g.Batch; n++)
        for (int co = 0; co < g.OutChannels; co++)
        {
            int outBase = (n * g.OutChannels + co) * plane;
            var sum = y.AsSpan(outBase, plane);
            sum.Fill(bias is null ? 0 : bias[co]);
            for (int ci = 0; ci < g.InChannels; ci++)
            for (int ky = 0; ky < g.Kernel; ky++)
            for (int kx = 0; kx < g.Kernel; kx++)
            {
                double w = weight[((co * g.InChannels + ci) * g.Kernel + ky) * g.Kernel + kx];
                for (int oy = 0; oy < g.OutHeight; oy++)
                {
                    int iy = oy * g.Stride - g.PadTop + ky;
                    if (iy < 0 || iy >= virtualHeight) continue;
                    int row = ((n * g.InChannels + ci) * g.Height + (iy >> shift)) * g.Width;
                    for (int ox = 0; ox < g.OutWidth; ox++)
                    {
                        int ix = ox * g.Stride - g.PadLeft + kx;
                        if (ix < 0 || ix >= virtualWidth) continue;
                        sum[oy * g.OutWidth + ox] += w * x[row + (ix >> shift)];
                    }
                }
            }
            if (residual is null) continue;
            for (int i = 0; i < plane; i++) sum[i] += residual[outBase + i];
        }
        return y;
    }

    /// <summary>Per-(batch, group) mean and M2 (sum of squared deviations from the mean), two-pass.</summary>
    public static (double[] Mean, double[] M2) GroupMoments(float[] x, int batch, int channels, int spatial, int groups)
    {
        int perGroup = channels / groups * spatial;
        var mean = new double[batch * groups];
        var m2 = new double[batch * groups];
        for (int g = 0; g < batch * groups; g++)
        {
            int begin = g * perGroup;
            double sum = 0;
            for (int i = 0; i < perGroup; i++) sum += x[begin + i];
            double m = sum / perGroup;
            double squares = 0;
            for (int i = 0; i < perGroup; i++) squares += (x[begin + i] - m) * (x[begin + i] - m);
            mean[g] = m;
            m2[g] = squares;
        }
        return (mean, m2);
    }

    /// <summary>torch.group_norm (biased variance) then optional SiLU; also the per-(batch, group) mean and rstd.</summary>
    public static (double[] Y, double[] Mean, double[] Rstd) GroupNorm(float[] x, int batch, int channels, int spatial,
        int groups, double eps, float[] gamma, float[] beta, bool silu)
    {
        int perGroup = channels / groups * spatial;
        var (mean, m2) = GroupMoments(x, batch, channels, spatial, groups);
        double[] rstd = m2.Select(squares => 1 / Math.Sqrt(squares / perGroup + eps)).ToArray();
        var y = new double[x.Length];
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

    /// <summary><c>y = x * scale[row] + shift[row]</c> (then optional SiLU), one row per (batch, channel).</summary>
    public static double[] ChannelAffine(float[] x, int spatial, float[] scale, float[] shift, bool silu)
    {
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double v = (double)x[i] * scale[i / spatial] + shift[i / spatial];
            y[i] = silu ? Silu(v) : v;
        }
        return y;
    }

    /// <summary>
    /// Space to depth as diffusers writes AvgDown3D / patchify: every input pixel scattered to its block channel
    /// <c>(c * frames + t) * f^2 + s</c> of the expanded tensor, then each run of <c>group</c> channels averaged.
    /// <paramref name="previous"/> null with two frames: zeros.
    /// </summary>
    public static double[] SpaceToDepth(float[] current, float[]? previous, TensorShape shape, PixelShuffleSpec spec)
    {
        int f = spec.Factor, area = f * f, h = shape.H / f, w = shape.W / f;
        int expanded = shape.C * spec.BlockChannels, outChannels = expanded / spec.Group;
        var e = new double[(long)shape.N * expanded * h * w];
        for (int n = 0; n < shape.N; n++)
        for (int t = 0; t < spec.Frames; t++)
        {
            float[]? frame = t == spec.Frames - 1 ? current : previous;
            if (frame is null) continue;
            for (int c = 0; c < shape.C; c++)
            for (int row = 0; row < shape.H; row++)
            for (int col = 0; col < shape.W; col++)
            {
                int dy = row % f, dx = col % f;
                int sub = spec.WidthFirst ? dx * f + dy : dy * f + dx;
                int j = (c * spec.Frames + t) * area + sub;
                e[(((long)n * expanded + j) * h + row / f) * w + col / f] = frame[(((long)n * shape.C + c) * shape.H + row) * shape.W + col];
            }
        }
        var y = new double[(long)shape.N * outChannels * h * w];
        long plane = (long)h * w;
        for (int n = 0; n < shape.N; n++)
        for (int o = 0; o < outChannels; o++)
        for (long p = 0; p < plane; p++)
        {
            double sum = 0;
            for (int q = 0; q < spec.Group; q++) sum += e[((long)n * expanded + o * spec.Group + q) * plane + p];
            y[((long)n * outChannels + o) * plane + p] = sum / spec.Group;
        }
        return y;
    }

    /// <summary>
    /// Depth to space as diffusers writes DupUp3D / unpatchify: channels repeated <c>group</c> times
    /// (repeat_interleave), then each block channel <c>(o * frames + t) * f^2 + s</c> of frame <paramref name="frame"/>
    /// scattered to its pixel.
    /// </summary>
    public static double[] DepthToSpace(float[] x, TensorShape shape, PixelShuffleSpec spec, int frame)
    {
        int f = spec.Factor, area = f * f;
        int repeated = shape.C * spec.Group, outChannels = repeated / spec.BlockChannels;
        int outH = shape.H * f, outW = shape.W * f;
        var y = new double[(long)shape.N * outChannels * outH * outW];
        for (int n = 0; n < shape.N; n++)
        for (int j = 0; j < repeated; j++)
        {
            int o = j / spec.BlockChannels, t = j / area % spec.Frames, sub = j % area;
            if (t != frame) continue;
            int dy = spec.WidthFirst ? sub % f : sub / f, dx = spec.WidthFirst ? sub / f : sub % f;
            for (int row = 0; row < shape.H; row++)
            for (int col = 0; col < shape.W; col++)
                y[(((long)n * outChannels + o) * outH + row * f + dy) * outW + col * f + dx] =
                    x[(((long)n * shape.C + j / spec.Group) * shape.H + row) * shape.W + col];
        }
        return y;
    }

    /// <summary>The channel RMS norm: x / max(||x[n, :, p]||, 1e-12) * sqrt(C) * gamma[c] (+ SiLU), in double.</summary>
    public static double[] RmsNorm(float[] x, int batch, int channels, int spatial, float[] gamma, bool silu)
    {
        var y = new double[x.Length];
        for (int n = 0; n < batch; n++)
        for (int p = 0; p < spatial; p++)
        {
            double sum = 0;
            for (int c = 0; c < channels; c++)
            {
                double v = x[((long)n * channels + c) * spatial + p];
                sum += v * v;
            }
            double factor = Math.Sqrt(channels) / Math.Max(Math.Sqrt(sum), 1e-12);
            for (int c = 0; c < channels; c++)
            {
                long at = ((long)n * channels + c) * spatial + p;
                double v = x[at] * factor * gamma[c];
                y[at] = silu ? Silu(v) : v;
            }
        }
        return y;
    }

    /// <summary>Single-head attention over channel-major [B, C, N]: a full softmax row per query.</summary>
    public static double[] Attention(float[] q, float[] k, float[] v, int batch, int channels, int tokens, double scale) =>
        AttentionOverKeys(q, k, v, batch, channels, tokens, tokens, scale, out _);

    /// <summary>
    /// Attention of <paramref name="queries"/> queries (q [B, C, queries]) against <paramref name="keys"/> keys (k, v
    /// [B, C, keys]) with a full softmax in double, and each query's log-sum-exp of its scaled scores [B, queries].
    /// </summary>
    public static double[] AttentionOverKeys(float[] q, float[] k, float[] v, int batch, int channels, int queries, int keys,
        double scale, out double[] logSumExp)
    {
        var y = new double[batch * channels * queries];
        logSumExp = new double[batch * queries];
        var scores = new double[keys];
        for (int b = 0; b < batch; b++)
        {
            int qBase = b * channels * queries, kBase = b * channels * keys;
            for (int i = 0; i < queries; i++)
            {
                double max = double.NegativeInfinity;
                for (int j = 0; j < keys; j++)
                {
                    double s = 0;
                    for (int c = 0; c < channels; c++) s += (double)q[qBase + c * queries + i] * k[kBase + c * keys + j];
                    scores[j] = s * scale;
                    max = Math.Max(max, scores[j]);
                }
                double total = 0;
                for (int j = 0; j < keys; j++)
                {
                    scores[j] = Math.Exp(scores[j] - max);
                    total += scores[j];
                }
                logSumExp[b * queries + i] = max + Math.Log(total);
                for (int c = 0; c < channels; c++)
                {
                    double sum = 0;
                    for (int j = 0; j < keys; j++) sum += scores[j] * v[kBase + c * keys + j];
                    y[qBase + c * queries + i] = sum / total;
                }
            }
        }
        return y;
    }

    public static double Unary(UnaryOp op, double x) => op switch
    {
        UnaryOp.Silu => Silu(x),
        UnaryOp.Relu => Relu(x),
        UnaryOp.TanhClamp3 => TanhClamp3(x),
        UnaryOp.ClampUnit => Math.Clamp(x, -1, 1),
        _ => throw new ArgumentOutOfRangeException(nameof(op), op, "no reference for this activation"),
    };

    public static double Silu(double x) => x / (1 + Math.Exp(-x));

    public static double Relu(double x) => Math.Max(x, 0);

    public static double TanhClamp3(double x) => Math.Tanh(x / 3) * 3;

    /// <summary>Interleaved RGB [N, H, W, 3] bytes to planar [N, 3, H, W] with <c>pixel / 255 * scale + shift</c>.</summary>
    public static double[] ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, double scale, double shift)
    {
        int plane = height * width;
        var y = new double[batch * 3 * plane];
        for (int n = 0; n < batch; n++)
        for (int c = 0; c < 3; c++)
        for (int p = 0; p < plane; p++)
            y[(n * 3 + c) * plane + p] = rgb[(n * plane + p) * 3 + c] / 255.0 * scale + shift;
        return y;
    }

    /// <summary>One byte of TensorToImage: <c>round_half_even(clamp(value, 0, 1) * 255)</c>, NaN to 0 (as torch's uint8 cast).</summary>
    public static double Pixel(double value) =>
        double.IsNaN(value) ? 0 : Math.Round(Math.Clamp(value, 0, 1) * 255, MidpointRounding.ToEven);
}
