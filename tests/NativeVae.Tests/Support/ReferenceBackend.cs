using NativeVae.Core;

namespace NativeVae.Tests.Support;

/// <summary>
/// <see cref="IBackend"/> over <see cref="Reference"/>: host arrays in, the plain double-accumulator ops, outputs
/// rounded to fp32. The models' graphs are checked on it independently of any real kernel.
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

    public BackendCapabilities Capabilities => new(FusesNormIntoConv: false, BackendCapabilities.HostMemoryBytes);

    private static float[] D(Tensor t) => ((HostTensor)t).Data;

    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32) => new HostTensor(shape, new float[shape.ElementCount]);

    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32) => new HostTensor(shape, data.ToArray());

    public void Download(Tensor tensor, Span<float> destination) => D(tensor).CopyTo(destination);

    public void Synchronize() { }

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var s = input.Shape;
        var g = Reference.ConvGeometry.Of(s.N, s.C, s.H, s.W, weight.Shape[0], weight.Shape[2], spec);
        var y = Reference.Conv2d(g, D(input), D(weight), bias is null ? null : D(bias), residual is null ? null : D(residual));
        return Result(TensorShape.Nchw(s.N, g.OutChannels, g.OutHeight, g.OutWidth), y);
    }

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu)
    {
        var s = input.Shape;
        var (y, _, _) = Reference.GroupNorm(D(input), s.N, s.C, s.H * s.W, groups, eps, D(gamma), D(beta), fuseSilu);
        return Result(s, y);
    }

    public Tensor GroupNormStatistics(Tensor input, int groups)
    {
        var s = input.Shape;
        var (mean, m2) = Reference.GroupMoments(D(input), s.N, s.C, s.H * s.W, groups);
        var pairs = new double[2 * mean.Length];
        for (int g = 0; g < mean.Length; g++) (pairs[2 * g], pairs[2 * g + 1]) = (mean[g], m2[g]);
        return Result(new TensorShape(s.N, groups, 2), pairs);
    }

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu) =>
        Result(input.Shape, Reference.ChannelAffine(D(input), input.Shape.H * input.Shape.W, D(scale), D(shift), fuseSilu));

    public Tensor RmsNorm(Tensor input, Tensor gamma, bool fuseSilu) =>
        Result(input.Shape, Reference.RmsNorm(D(input), input.Shape.N, input.Shape.C, input.Shape.H * input.Shape.W, D(gamma), fuseSilu));

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        var s = q.Shape;
        return Result(s, Reference.Attention(D(q), D(k), D(v), s.N, s.C, s.H * s.W, scale));
    }

    public Tensor Unary(UnaryOp op, Tensor input) => Map(input, x => Reference.Unary(op, x));

    public Tensor Add(Tensor a, Tensor b) => new HostTensor(a.Shape, D(a).Zip(D(b), (x, y) => x + y).ToArray());

    public Tensor ScaleShift(Tensor input, float scale, float shift) => Map(input, x => x * scale + shift);

    public long CountNonFinite(Tensor input) => D(input).LongCount(v => !float.IsFinite(v));

    public Tensor SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec) =>
        Result(OpShapes.SpaceToDepth(current, previous, spec), Reference.SpaceToDepth(D(current), previous is null ? null : D(previous), current.Shape, spec));

    public Tensor DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame) =>
        Result(OpShapes.DepthToSpace(input, spec, frame), Reference.DepthToSpace(D(input), input.Shape, spec, frame));

    public Tensor SliceChannels(Tensor input, int start, int count)
    {
        var y = new HostTensor(OpShapes.SliceChannels(input, start, count), new float[count * (long)input.Shape.N * input.Shape.H * input.Shape.W]);
        OpShapes.CopyChannels(D(input), input.Shape, start, count, y.Data);
        return y;
    }

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift) =>
        Result(TensorShape.Nchw(batch, 3, height, width), Reference.ImageToTensor(rgb, batch, height, width, scale, shift));

    public long TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var s = input.Shape;
        var x = D(input);
        int plane = s.H * s.W;
        for (int n = 0; n < s.N; n++)
        for (int c = 0; c < 3; c++)
        for (int p = 0; p < plane; p++)
            rgb[(n * plane + p) * 3 + c] = (byte)Reference.Pixel((double)x[(n * 3 + c) * plane + p] * scale + shift);
        return CountNonFinite(input);
    }

    private static Tensor Result(TensorShape shape, double[] values) =>
        new HostTensor(shape, values.Select(v => (float)v).ToArray());

    private static Tensor Map(Tensor input, Func<double, double> f) =>
        new HostTensor(input.Shape, D(input).Select(x => (float)f(x)).ToArray());

    public void Dispose() { }
}
