using System.Runtime.InteropServices;
using NativeVae.Kernels.Cpu;
using NativeVae.Core;
using NativeVae.Kernels;

namespace NativeVae.Backends.Cpu;

/// <summary>
/// The op interface on the CPU with SIMD kernels (src/Kernels/Cpu) at the widest vector width the machine
/// accelerates, on all cores. Ops run synchronously on the calling thread plus the backend's worker threads.
/// Tensors live in pooled native memory; convolution weights are packed once, on their first use, and the
/// packing is kept with the weight tensor. One backend may be used from one thread at a time.
/// </summary>
internal sealed unsafe class CpuBackend : IBackend
{
    private readonly BufferPool<nint> _pool = new(HostMemory.Allocate, HostMemory.Free, releaseOnGrowth: true);
    private readonly CallMemoryPlan _memory;
    private readonly CpuWorkers _workers;

    /// <param name="width">Vector width; null picks the widest accelerated one. Tests pin narrower widths.</param>
    /// <param name="threads">Worker threads including the caller; 0 uses every core.</param>
    public CpuBackend(SimdWidth? width = null, int threads = 0)
    {
        var best = SimdWidths.Best;
        Width = width ?? best;
        if (Width > best)
            throw new NotSupportedException($"CPU backend: {Width} vectors are not accelerated on this machine (best is {best})");
        if (threads < 0)
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must not be negative");
        _workers = new CpuWorkers(threads);
        _memory = new CallMemoryPlan(_pool);
        Name = $"CPU SIMD ({Width}, {_workers.Count} threads)";
    }

    public string Name { get; }

    public BackendKind Kind => BackendKind.Cpu;

    public BackendCapabilities Capabilities => new(FusesNormIntoConv: true, BackendCapabilities.HostMemoryBytes,
        GathersChannelMoments: true, GroupNormStatisticsOutput: true, MemoryIsHost: true,
        FreeMemoryBytes: BackendCapabilities.HostFreeBytes);

    /// <summary>The vector width the kernels run at.</summary>
    public SimdWidth Width { get; }

    /// <summary>
    /// The pool's live, pooled and peak bytes (packed conv weights included: the pool tracks them), each plus the
    /// workers' scratch. Scratch only grows while the backend lives, so adding its current size to the pool's peak
    /// gives the peak of the sum.
    /// </summary>
    public MemoryStats Memory
    {
        get
        {
            var pool = _pool.Stats;
            long scratch = _workers.ScratchBytes;
            return new MemoryStats(pool.LiveBytes + scratch, pool.PooledBytes, pool.PeakBytes + scratch);
        }
    }

    /// <summary>
    /// Frees the pooled buffers and the call plans' arena, and restarts <see cref="Memory"/>'s peak at the live bytes.
    /// </summary>
    public void ResetPeakMemory()
    {
        _memory.Reset();
        _pool.ResetPeak();
    }

    /// <summary>A weight tensor's packing was freed with it.</summary>
    internal void ReleasePackedWeights(long bytes) => _pool.TrackExternal(-bytes);

    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32) => new CpuTensor(this, _memory, shape, dtype);

    /// <summary>Plans a repeated call's buffers into one arena (see <see cref="CallMemoryPlan"/>).</summary>
    public IDisposable BeginCall(string key) => _memory.BeginCall(key);

    /// <summary>Calls that ran entirely on their memory plan so far.</summary>
    internal int PlannedCalls => _memory.PlannedCalls;

    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32)
    {
        if (data.Length != shape.ElementCount)
            throw new ArgumentException($"upload of {data.Length} values into a tensor of shape {shape}", nameof(data));
        if (dtype != DType.F32)
            throw new NotSupportedException($"upload to {dtype} is not supported yet on {Name}");
        var tensor = (CpuTensor)Allocate(shape, dtype);
        data.CopyTo(new Span<float>(tensor.F32, data.Length));
        return tensor;
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        var t = Own(tensor, nameof(tensor));
        if (destination.Length != t.ElementCount)
            throw new ArgumentException($"download of tensor {t} into {destination.Length} values", nameof(destination));
        new ReadOnlySpan<float>(t.F32, destination.Length).CopyTo(destination);
    }

    public void Synchronize()
    {
        // Ops finish before they return.
    }

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null) =>
        Conv2d(Own(input, nameof(input)), weight, bias, spec, residual, default);

    /// <summary>
    /// GroupNorm (+ SiLU) folded into the convolution: its statistics become a per-channel affine
    /// (<see cref="GroupNormCpu.Fold"/>, the same fp32 scale and shift per channel as
    /// <see cref="GroupNorm(Tensor, Tensor, Tensor, int, float, bool)"/>) that the convolution applies as it packs its input.
    /// </summary>
    public Tensor NormConv2d(Tensor input, GroupNormSpec norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var x = Own(input, nameof(input));
        var g = Own(norm.Gamma, "gamma");
        var bt = Own(norm.Beta, "beta");
        OpShapes.GroupNorm(x, g, bt, norm.Groups);
        using var affine = (CpuTensor)Allocate(new TensorShape(2, x.Shape.N * x.Shape.C)); // [scale; shift]
        float* scale = affine.F32, shift = scale + x.Shape.N * x.Shape.C;
        var p = KernelParameters.GroupNorm(x, norm.Groups, norm.Eps, norm.Silu);
        if (x.ChannelMoments is { } channels)
        {
            fixed (double* c = channels)
                GroupNormCpu.FoldFromChannels(p, c, g.F32, bt.F32, scale, shift);
        }
        else
        {
            GroupNormCpu.Fold(_workers, Width, p, x.F32, g.F32, bt.F32, scale, shift);
        }
        return Conv2d(x, weight, bias, spec, residual, new InputAffine(scale, shift, norm.Silu));
    }

    private Tensor Conv2d(CpuTensor x, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual, InputAffine affine)
    {
        var w = Own(weight, nameof(weight));
        var b = bias is null ? null : Own(bias, nameof(bias));
        var r = residual is null ? null : Own(residual, nameof(residual));
        var outShape = OpShapes.Conv2d(x, w, b, spec, r);
        var p = KernelParameters.Conv2d(x, w, spec, outShape, b is not null, r is not null);
        var y = (CpuTensor)Allocate(outShape);
        float* biasData = b is null ? null : b.F32, residualData = r is null ? null : r.F32;
        if (UseWinograd(p))
        {
            // The outputs' per-channel moments come almost free while they are in registers; the GroupNorm that
            // usually follows (IBackend.NormConv2d) then skips its statistics pass over this tensor.
            var moments = new double[2L * outShape.N * outShape.C];
            fixed (double* m = moments)
                Conv2dWinogradCpu.Run(_workers, Width, p, x.F32, w.F32, biasData, residualData, y.F32, affine, m);
            y.ChannelMoments = moments;
            return y;
        }

        var packed = w.PackedConvWeights;
        if (packed is null)
        {
            packed = new Conv2dPackedWeights(w.F32, w.Shape[0], w.Shape[1], p.Kernel);
            _pool.TrackExternal(packed.Bytes); // both copies exist until the row-major one is freed
            w.AdoptPacking(packed);
        }
        Conv2dCpu.Run(_workers, Width, p, x.F32, packed, biasData, residualData, y.F32, affine);
        return y;
    }

    /// <summary>
    /// 3x3 stride-1 same-size convolutions with enough channels take Winograd F(4x4, 3x3) (4x fewer multiplies,
    /// ~10x the direct path's fp32 rounding error); <see cref="WinogradEnabled"/> off forces the direct path.
    /// </summary>
    private bool UseWinograd(in Conv2dParams p) => WinogradEnabled && Conv2dWinogradCpu.Supports(p)
        && p.InChannels >= Conv2dWinogradCpu.MinChannels && p.OutChannels >= Conv2dWinogradCpu.MinChannels;

    /// <summary>Whether eligible convolutions take the Winograd path (default on; tests and benchmarks compare both).</summary>
    public bool WinogradEnabled { get; set; } = true;

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu)
    {
        using var stats = (CpuTensor)Allocate(new TensorShape(Math.Max(0, input.Shape.Rank == 4 ? input.Shape.N : 0), Math.Max(groups, 0), 2));
        return GroupNorm(input, gamma, beta, groups, eps, fuseSilu, stats);
    }

    public Tensor GroupNormWithStatistics(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu, out Tensor stats)
    {
        var statsTensor = Allocate(new TensorShape(input.Shape.N, groups, 2));
        try
        {
            var y = GroupNorm(input, gamma, beta, groups, eps, fuseSilu, statsTensor);
            stats = statsTensor;
            return y;
        }
        catch
        {
            statsTensor.Dispose();
            throw;
        }
    }

    /// <summary>GroupNorm that also returns its per-group (mean, rstd) in <paramref name="stats"/> [N, G, 2] (for tests).</summary>
    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu, Tensor stats)
    {
        var x = Own(input, nameof(input));
        var g = Own(gamma, nameof(gamma));
        var bt = Own(beta, nameof(beta));
        var st = Own(stats, nameof(stats));
        OpShapes.GroupNorm(x, g, bt, groups);
        if (st.ElementCount != 2L * x.Shape.N * groups)
            throw new ArgumentException($"group_norm stats {st.Shape} must hold (mean, rstd) for {x.Shape.N}x{groups} groups");
        var y = (CpuTensor)Allocate(x.Shape);
        var p = KernelParameters.GroupNorm(x, groups, eps, fuseSilu);
        GroupNormCpu.Run(_workers, Width, p, x.F32, g.F32, bt.F32, st.F32, y.F32);
        return y;
    }

    public Tensor GroupNormStatistics(Tensor input, int groups)
    {
        var x = Own(input, nameof(input));
        var stats = (CpuTensor)Allocate(OpShapes.GroupNormStatistics(x, groups));
        var p = KernelParameters.GroupNorm(x, groups, moments: true);
        GroupNormCpu.Moments(_workers, Width, p, x.F32, stats.F32);
        return stats;
    }

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        var sc = Own(scale, nameof(scale));
        var sh = Own(shift, nameof(shift));
        var y = (CpuTensor)Allocate(OpShapes.ChannelAffine(x, sc, sh));
        GroupNormCpu.ChannelAffine(_workers, Width, x.Shape.N * x.Shape.C, checked(x.Shape.H * x.Shape.W), fuseSilu,
            x.F32, sc.F32, sh.F32, y.F32);
        return y;
    }

    public long CountNonFinite(Tensor input)
    {
        var x = Own(input, nameof(input));
        return ElementwiseCpu.CountNonFinite(_workers, x.F32, x.ElementCount);
    }

    public Tensor SliceChannels(Tensor input, int start, int count)
    {
        var x = Own(input, nameof(input));
        var y = (CpuTensor)Allocate(OpShapes.SliceChannels(x, start, count));
        OpShapes.CopyChannels(new ReadOnlySpan<float>(x.F32, checked((int)x.ElementCount)), x.Shape, start, count,
            new Span<float>(y.F32, checked((int)y.ElementCount)));
        return y;
    }

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        var tq = Own(q, nameof(q));
        var tk = Own(k, nameof(k));
        var tv = Own(v, nameof(v));
        OpShapes.Attention(tq, tk, tv);
        var y = (CpuTensor)Allocate(tq.Shape);
        var p = KernelParameters.Attention(tq, scale);
        AttentionCpu.Run(_workers, Width, p, tq.F32, tk.F32, tv.F32, y.F32);
        return y;
    }

    public Tensor Unary(UnaryOp op, Tensor input)
    {
        var x = Own(input, nameof(input));
        var y = (CpuTensor)Allocate(x.Shape);
        switch (op)
        {
            case UnaryOp.Silu: ElementwiseCpu.Map(_workers, Width, new SiluFunction(), x.F32, y.F32, x.ElementCount); break;
            case UnaryOp.Relu: ElementwiseCpu.Map(_workers, Width, new ReluFunction(), x.F32, y.F32, x.ElementCount); break;
            case UnaryOp.TanhClamp3: ElementwiseCpu.Map(_workers, Width, new TanhClamp3Function(), x.F32, y.F32, x.ElementCount); break;
            default:
                y.Dispose();
                throw new ArgumentOutOfRangeException(nameof(op), op, "unknown unary op");
        }
        return y;
    }

    public Tensor Add(Tensor a, Tensor b)
    {
        var ta = Own(a, nameof(a));
        var tb = Own(b, nameof(b));
        OpShapes.SameShape(ta, tb, "add");
        var y = (CpuTensor)Allocate(ta.Shape);
        ElementwiseCpu.Add(_workers, Width, ta.F32, tb.F32, y.F32, ta.ElementCount);
        return y;
    }

    public Tensor ScaleShift(Tensor input, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        var y = (CpuTensor)Allocate(x.Shape);
        ElementwiseCpu.Map(_workers, Width, new AffineFunction(scale, shift, silu: false), x.F32, y.F32, x.ElementCount);
        return y;
    }

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        var shape = OpShapes.ImageToTensor(rgb.Length, batch, height, width);
        var y = (CpuTensor)Allocate(shape);
        fixed (byte* pixels = rgb)
            ElementwiseCpu.ImageToTensor(_workers, pixels, y.F32, batch, height, width, scale, shift);
        return y;
    }

    public void TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        OpShapes.TensorToImage(x, rgb.Length);
        fixed (byte* pixels = rgb)
            ElementwiseCpu.TensorToImage(_workers, x.F32, pixels, x.Shape.N, x.Shape.H, x.Shape.W, scale, shift);
    }

    private CpuTensor Own(Tensor tensor, string name) => Tensor.Require<CpuTensor>(tensor, this, name);

    public void Dispose()
    {
        _workers.Dispose();
        _memory.Dispose();
        _pool.Dispose();
    }
}
