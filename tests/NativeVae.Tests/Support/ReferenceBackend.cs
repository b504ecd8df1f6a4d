using NativeVae.Backends;
using NativeVae.Tensors;

namespace NativeVae.Tests.Support;

/// <summary>
/// The op contract of <see cref="IBackend"/> in plain C# with double accumulators: nobody optimises it; it is
/// the reference the models' graphs are checked with while (and after) the real kernels are written.
/// </summary>
internal sealed class ReferenceBackend : IBackend
{
    private sealed class HostTensor(TensorShape shape, float[] data) : Tensor(shape, DType.F32)
    {
        public float[] Data { get; } = data;
        public override bool IsDisposed => false;
        public override void Dispose() { }
    }

    public string Name => "reference (plain C#)";
    public BackendKind Kind => BackendKind.IlgpuCpu;
    public MemoryStats Memory => default;

    private static float[] D(Tensor t) => ((HostTensor)t).Data;

    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32) => new HostTensor(shape, new float[shape.ElementCount]);

    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32) => new HostTensor(shape, data.ToArray());

    public void Download(Tensor tensor, Span<float> destination) => D(tensor).CopyTo(destination);

    public void Synchronize() { }

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var s = input.Shape;
        int cout = weight.Shape[0], k = weight.Shape[2];
        int inH = spec.Upsample2x ? 2 * s.H : s.H, inW = spec.Upsample2x ? 2 * s.W : s.W;
        int ho = spec.OutputHeight(s.H, k), wo = spec.OutputWidth(s.W, k);
        var x = D(input);
        var w = D(weight);
        var y = new float[(long)s.N * cout * ho * wo];
        var acc = new double[ho * wo];
        for (int n = 0; n < s.N; n++)
        for (int co = 0; co < cout; co++)
        {
            Array.Fill(acc, bias is null ? 0.0 : D(bias)[co]);
            for (int ci = 0; ci < s.C; ci++)
            for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++)
            {
                double wv = w[((co * s.C + ci) * k + ky) * k + kx];
                for (int oy = 0; oy < ho; oy++)
                {
                    int iy = oy * spec.Stride - spec.PadTop + ky;
                    if (iy < 0 || iy >= inH) continue;
                    int sy = spec.Upsample2x ? iy / 2 : iy;
                    int rowBase = ((n * s.C + ci) * s.H + sy) * s.W;
                    for (int ox = 0; ox < wo; ox++)
                    {
                        int ix = ox * spec.Stride - spec.PadLeft + kx;
                        if (ix < 0 || ix >= inW) continue;
                        acc[oy * wo + ox] += wv * x[rowBase + (spec.Upsample2x ? ix / 2 : ix)];
                    }
                }
            }
            int outBase = (n * cout + co) * ho * wo;
            for (int i = 0; i < acc.Length; i++)
                y[outBase + i] = (float)(acc[i] + (residual is null ? 0.0 : D(residual)[outBase + i]));
        }
        return new HostTensor(TensorShape.Nchw(s.N, cout, ho, wo), y);
    }

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu)
    {
        var s = input.Shape;
        var x = D(input);
        var y = new float[x.Length];
        int perGroup = s.C / groups, hw = s.H * s.W;
        for (int n = 0; n < s.N; n++)
        for (int g = 0; g < groups; g++)
        {
            int start = (n * s.C + g * perGroup) * hw, count = perGroup * hw;
            double mean = 0, sq = 0;
            for (int i = 0; i < count; i++) mean += x[start + i];
            mean /= count;
            for (int i = 0; i < count; i++) sq += (x[start + i] - mean) * (x[start + i] - mean);
            double rstd = 1.0 / Math.Sqrt(sq / count + eps);
            for (int i = 0; i < count; i++)
            {
                int c = g * perGroup + i / hw;
                double v = (x[start + i] - mean) * rstd * D(gamma)[c] + D(beta)[c];
                y[start + i] = (float)(fuseSilu ? v / (1 + Math.Exp(-v)) : v);
            }
        }
        return new HostTensor(s, y);
    }

    public Tensor GroupNormStatistics(Tensor input, int groups)
    {
        var s = input.Shape;
        var x = D(input);
        int count = s.C / groups * s.H * s.W;
        var stats = new float[s.N * groups * 2];
        for (int i = 0; i < s.N * groups; i++)
        {
            double mean = 0, m2 = 0;
            for (int j = 0; j < count; j++) mean += x[i * count + j];
            mean /= count;
            for (int j = 0; j < count; j++) m2 += (x[i * count + j] - mean) * (x[i * count + j] - mean);
            stats[2 * i] = (float)mean;
            stats[2 * i + 1] = (float)m2;
        }
        return new HostTensor(new TensorShape(s.N, groups, 2), stats);
    }

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu)
    {
        var s = input.Shape;
        var x = D(input);
        var y = new float[x.Length];
        int hw = s.H * s.W;
        for (int i = 0; i < x.Length; i++)
        {
            int nc = i / hw;
            double v = (double)x[i] * D(scale)[nc] + D(shift)[nc];
            y[i] = (float)(fuseSilu ? v / (1 + Math.Exp(-v)) : v);
        }
        return new HostTensor(s, y);
    }

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale) =>
        throw new NotSupportedException("reference attention is not needed by the TAESD tests");

    public Tensor Unary(UnaryOp op, Tensor input) => Map(input, x => op switch
    {
        UnaryOp.Relu => Math.Max(x, 0),
        UnaryOp.Silu => x / (1 + Math.Exp(-x)),
        UnaryOp.TanhClamp3 => Math.Tanh(x / 3) * 3,
        _ => throw new ArgumentOutOfRangeException(nameof(op)),
    });

    public Tensor Add(Tensor a, Tensor b) => new HostTensor(a.Shape, D(a).Zip(D(b), (x, y) => x + y).ToArray());

    public Tensor ScaleShift(Tensor input, float scale, float shift) => Map(input, x => x * scale + shift);

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        var y = new float[rgb.Length];
        for (int n = 0; n < batch; n++)
        for (int c = 0; c < 3; c++)
        for (int p = 0; p < height * width; p++)
            y[(n * 3 + c) * height * width + p] = rgb[(n * height * width + p) * 3 + c] / 255f * scale + shift;
        return new HostTensor(TensorShape.Nchw(batch, 3, height, width), y);
    }

    public void TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var s = input.Shape;
        var x = D(input);
        for (int n = 0; n < s.N; n++)
        for (int c = 0; c < 3; c++)
        for (int p = 0; p < s.H * s.W; p++)
            rgb[(n * s.H * s.W + p) * 3 + c] = (byte)Math.Round(Math.Clamp(x[(n * 3 + c) * s.H * s.W + p] * scale + shift, 0, 1) * 255);
    }

    private static Tensor Map(Tensor input, Func<double, double> f) =>
        new HostTensor(input.Shape, D(input).Select(x => (float)f(x)).ToArray());

    public void Dispose() { }
}
