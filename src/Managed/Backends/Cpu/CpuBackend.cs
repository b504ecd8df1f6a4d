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
/// With a 16-bit <see cref="StorageDType"/>, activations and weights are stored in 16 bits and every kernel widens
/// what it reads and narrows what it writes, a row or chunk at a time: arithmetic and accumulation stay fp32, and
/// no fp32 copy of a 16-bit tensor is kept (16-bit convolution weights are packed or transformed on each call).
/// </summary>
internal sealed unsafe class CpuBackend : IBackend, IBackendDiagnostics, IHostTensors
{
    private readonly BufferPool<nint> _pool = new(HostMemory.Allocate, HostMemory.Free, releaseOnGrowth: true);
    private readonly CallMemoryPlan _memory;
    private readonly CpuWorkers _workers;

    /// <summary>A 16-bit weight widened for the Winograd transform: reused across calls, grown to the largest.</summary>
    private nint _widenedWeight;
    private long _widenedWeightBytes;

    /// <param name="width">Vector width; null picks the widest accelerated one. Tests pin narrower widths.</param>
    /// <param name="threads">Worker threads including the caller; 0 uses every core.</param>
    /// <param name="storage">How activations and weights are stored (fp32 arithmetic in every case).</param>
    public CpuBackend(SimdWidth? width = null, int threads = 0, DType storage = DType.F32)
    {
        var best = SimdWidths.Best;
        Width = width ?? best;
        if (Width > best)
            throw new NotSupportedException($"CPU backend: {Width} vectors are not accelerated on this machine (best is {best})");
        if (threads < 0)
            throw new ArgumentOutOfRangeException(nameof(threads), threads, "thread count must not be negative");
        _workers = new CpuWorkers(threads);
        _memory = new CallMemoryPlan(_pool);
        StorageDType = storage;
        Name = $"CPU SIMD ({Width}, {_workers.Count} threads" + (storage == DType.F32 ? ")" : $", {storage.ShortName()} storage)");
    }

    public DType StorageDType { get; }

    /// <summary>The kernels' name for a storage dtype.</summary>
    internal static StorageType StorageOf(DType dtype) => dtype switch
    {
        DType.F32 => StorageType.F32,
        DType.F16 => StorageType.F16,
        DType.BF16 => StorageType.BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    public string Name { get; }

    public BackendKind Kind => BackendKind.Cpu;

    public BackendCapabilities Capabilities => new(FusesNormIntoConv: true, BackendCapabilities.HostMemoryBytes,
        MemoryIsHost: true, FreeMemoryBytes: BackendCapabilities.HostFreeBytes, ChunksAttention: true, FusesConvRelu: true);

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

    public long PlannedBytes => _memory.ArenaBytes;

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
        var tensor = (CpuTensor)Allocate(shape, dtype);
        fixed (float* values = data)
            tensor.Elements.Write(0, values, data.Length);
        return tensor;
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        var t = Own(tensor, nameof(tensor));
        if (destination.Length != t.ElementCount)
            throw new ArgumentException($"download of tensor {t} into {destination.Length} values", nameof(destination));
        fixed (float* values = destination)
            t.ReadF32(values);
    }

    /// <summary>
    /// An fp32 weight of a convolution that takes the direct path (not Winograd: strided, 1x1, or few channels) is
    /// packed for the micro-kernel once, here, and the packing becomes its only copy; the others (Winograd's, which
    /// reads row-major weights, and 16-bit ones, which would double in fp32) stay as they are.
    /// </summary>
    public Tensor PrepareConvWeight(Tensor weight, Conv2dSpec spec)
    {
        var w = Own(weight, nameof(weight));
        OpShapes.RequireRank4(w, "conv2d weight");
        if (w.DType != DType.F32 || w.PackedConvWeights is not null || WinogradFits(w.Shape[2], spec.Stride, w.Shape[1], w.Shape[0])) return w;
        var packed = new Conv2dPackedWeights(w.F32, w.Shape[0], w.Shape[1], w.Shape[2]);
        _pool.TrackExternal(packed.Bytes);
        var prepared = new CpuTensor(this, _memory, w.Shape, packed);
        w.Dispose();
        return prepared;
    }

    /// <summary>An op's output, stored as <see cref="IBackend.ActivationDType"/> says.</summary>
    private CpuTensor AllocateOutput(TensorShape shape) => (CpuTensor)Allocate(shape, ((IBackend)this).ActivationDType(shape));

    public void Synchronize()
    {
        // Ops finish before they return.
    }

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null) =>
        Conv2d(Own(input, nameof(input)), weight, bias, spec, residual, default).Output;

    /// <summary>
    /// GroupNorm (+ SiLU) folded into the convolution: its statistics become a per-channel affine (the same fp32
    /// scale and shift per channel as <see cref="GroupNorm(Tensor, Tensor, Tensor, int, float, bool)"/>) that the
    /// convolution applies as it packs its input. When the Winograd convolution that wrote the input gathered its
    /// moments (<see cref="CpuTensor.Moments"/>), they are folded instead of a statistics pass.
    /// </summary>
    public Tensor NormConv2d(Tensor input, GroupNormSpec norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var x = Own(input, nameof(input));
        var g = AsF32(norm.Gamma, "gamma", out var gammaCopy);
        using var gammaOwned = gammaCopy;
        var bt = AsF32(norm.Beta, "beta", out var betaCopy);
        using var betaOwned = betaCopy;
        OpShapes.GroupNorm(x, g, bt, norm.Groups);
        int count = x.Shape.N * x.Shape.C;
        using var affine = (CpuTensor)Allocate(new TensorShape(2, count)); // [scale; shift]
        float* scale = affine.F32, shift = scale + count;
        if (x.Moments is { } moments)
        {
            moments.Fold(new ReadOnlySpan<float>(g.F32, x.Shape.C), new ReadOnlySpan<float>(bt.F32, x.Shape.C), norm.Groups, norm.Eps,
                new Span<float>(scale, count), new Span<float>(shift, count));
        }
        else
        {
            var p = KernelParameters.GroupNorm(x, norm.Groups, norm.Eps, norm.Silu);
            GroupNormCpu.Fold(_workers, Width, p, x.Elements, g.F32, bt.F32, scale, shift);
        }
        return Conv2d(x, weight, bias, spec, residual, new InputAffine(scale, shift, norm.Silu)).Output;
    }

    /// <summary>
    /// The input affine is applied as the convolution packs its input; moments come from the Winograd epilogue only:
    /// on the direct path a pass now would cost what a later one costs, and most direct convolutions (strided, few
    /// input channels) feed no GroupNorm.
    /// </summary>
    public ConvOutput Conv2dRegion(Tensor input, FoldedNorm? norm, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual, ConvMoments moments)
    {
        var x = Own(input, nameof(input));
        if (norm is not { } f) return Conv2d(x, weight, bias, spec, residual, default);
        var scale = AsF32(f.Scale, "scale", out var scaleCopy);
        using var scaleOwned = scaleCopy;
        var shift = AsF32(f.Shift, "shift", out var shiftCopy);
        using var shiftOwned = shiftCopy;
        var affineShape = new TensorShape(x.Shape.N, x.Shape.C);
        if (scale.Shape != affineShape || shift.Shape != affineShape)
            throw new ArgumentException($"conv2d input affine: scale {scale.Shape} and shift {shift.Shape} must be {affineShape} for input {x.Shape}");
        return Conv2d(x, weight, bias, spec, residual, new InputAffine(scale.F32, shift.F32, f.Silu));
    }

    private ConvOutput Conv2d(CpuTensor x, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual, InputAffine affine)
    {
        var w = Own(weight, nameof(weight));
        CpuTensor? biasCopy = null;
        var b = bias is null ? null : AsF32(bias, nameof(bias), out biasCopy);
        using var biasOwned = biasCopy;
        var r = residual is null ? null : Own(residual, nameof(residual));
        var outShape = OpShapes.Conv2d(x, w, b, spec, r);
        var p = KernelParameters.Conv2d(x, w, spec, outShape, b is not null, r is not null);
        var y = AllocateOutput(outShape);
        float* biasData = b is null ? null : b.F32;
        var residualData = r is null ? default : r.Elements;
        long spatial = (long)outShape.H * outShape.W;
        if (UseWinograd(p))
        {
            // The outputs' per-channel moments come almost free while they are in registers; the GroupNorm that
            // usually follows (NormConv2d, or exact tiling's next layer) then needs no statistics pass over this tensor.
            var values = new double[2L * outShape.N * outShape.C];
            fixed (double* m = values)
                Conv2dWinogradCpu.Run(_workers, Width, p, x.Elements, WidenedWeight(w), biasData, residualData, y.Elements, affine, m);
            // Moments gathered before a ReLU are not the output's.
            if (ReluInPlace(y, spec)) return new ConvOutput(y, null);
            y.Moments = ChannelMoments.Whole(outShape.N, outShape.C, values, spatial);
            return new ConvOutput(y, y.Moments);
        }

        if (w.PackedConvWeights is { } packed)
        {
            Conv2dCpu.Run(_workers, Width, p, x.Elements, packed, biasData, residualData, y.Elements, affine);
        }
        else
        {
            // A weight not prepared for this path (16-bit ones, which stay the only copy, or one prepared for Winograd
            // in a window Winograd does not take) is packed (widened) for this call: a few MiB at most.
            using var once = new Conv2dPackedWeights(w.Elements, w.Shape[0], w.Shape[1], p.Kernel);
            _pool.TrackExternal(once.Bytes);
            try
            {
                Conv2dCpu.Run(_workers, Width, p, x.Elements, once, biasData, residualData, y.Elements, affine);
            }
            finally
            {
                _pool.TrackExternal(-once.Bytes);
            }
        }
        ReluInPlace(y, spec);
        return new ConvOutput(y, null);
    }

    /// <summary>
    /// A fused ReLU (<see cref="Conv2dSpec.Relu"/>): applied in place to the output the convolution just wrote, so the
    /// conv and its ReLU make one tensor, not two. Returns whether it ran.
    /// </summary>
    private bool ReluInPlace(CpuTensor y, Conv2dSpec spec)
    {
        if (!spec.Relu) return false;
        ElementwiseCpu.Map(_workers, Width, new ReluFunction(), y.Elements, y.Elements, y.ElementCount);
        return true;
    }

    /// <summary>The weight row-major in fp32: itself, or a 16-bit weight widened into the reused buffer.</summary>
    private float* WidenedWeight(CpuTensor w)
    {
        if (w.DType == DType.F32 && w.PackedConvWeights is null) return w.F32;
        if (_widenedWeightBytes < w.ElementCount * sizeof(float))
        {
            if (_widenedWeight != 0)
            {
                HostMemory.Free(_widenedWeight, _widenedWeightBytes);
                _pool.TrackExternal(-_widenedWeightBytes);
            }
            _widenedWeightBytes = w.ElementCount * sizeof(float);
            _widenedWeight = HostMemory.Allocate(_widenedWeightBytes);
            _pool.TrackExternal(_widenedWeightBytes);
        }
        w.ReadF32((float*)_widenedWeight);
        return (float*)_widenedWeight;
    }

    /// <summary>
    /// 3x3 stride-1 same-size convolutions with enough channels take Winograd F(4x4, 3x3) (4x fewer multiplies,
    /// ~10x the direct path's fp32 rounding error); <see cref="WinogradEnabled"/> off forces the direct path.
    /// </summary>
    private bool UseWinograd(in Conv2dParams p) =>
        WinogradFits(p.Kernel, p.Stride, p.InChannels, p.OutChannels) && Conv2dWinogradCpu.Supports(p);

    /// <summary>
    /// Whether a convolution with this weight and stride takes Winograd, as far as they tell: the geometry of its
    /// input (<see cref="Conv2dWinogradCpu.Supports"/>) decides the rest, so an exact-tiling window may still fall
    /// back to the direct path. Weights are prepared by the same rule.
    /// </summary>
    private bool WinogradFits(int kernel, int stride, int inChannels, int outChannels) =>
        WinogradEnabled && kernel == Conv2dWinogradCpu.KernelSize && stride == 1
        && inChannels >= Conv2dWinogradCpu.MinChannels && outChannels >= Conv2dWinogradCpu.MinChannels;

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
        var g = AsF32(gamma, nameof(gamma), out var gammaCopy);
        using var gammaOwned = gammaCopy;
        var bt = AsF32(beta, nameof(beta), out var betaCopy);
        using var betaOwned = betaCopy;
        var st = Own(stats, nameof(stats));
        OpShapes.GroupNorm(x, g, bt, groups);
        if (st.ElementCount != 2L * x.Shape.N * groups)
            throw new ArgumentException($"group_norm stats {st.Shape} must hold (mean, rstd) for {x.Shape.N}x{groups} groups");
        var y = AllocateOutput(x.Shape);
        var p = KernelParameters.GroupNorm(x, groups, eps, fuseSilu);
        GroupNormCpu.Run(_workers, Width, p, x.Elements, g.F32, bt.F32, st.F32, y.Elements);
        return y;
    }

    public Tensor GroupNormStatistics(Tensor input, int groups)
    {
        var x = Own(input, nameof(input));
        var stats = (CpuTensor)Allocate(OpShapes.GroupNormStatistics(x, groups));
        var p = KernelParameters.GroupNorm(x, groups, moments: true);
        GroupNormCpu.Moments(_workers, Width, p, x.Elements, stats.F32);
        return stats;
    }

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        var sc = AsF32(scale, nameof(scale), out var scaleCopy);
        using var scaleOwned = scaleCopy;
        var sh = AsF32(shift, nameof(shift), out var shiftCopy);
        using var shiftOwned = shiftCopy;
        var y = AllocateOutput(OpShapes.ChannelAffine(x, sc, sh));
        GroupNormCpu.ChannelAffine(_workers, Width, x.Shape.N * x.Shape.C, checked(x.Shape.H * x.Shape.W), fuseSilu,
            x.Elements, sc.F32, sh.F32, y.Elements);
        return y;
    }

    public Tensor RmsNorm(Tensor input, Tensor gamma, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        var g = AsF32(gamma, nameof(gamma), out var gammaCopy);
        using var gammaOwned = gammaCopy;
        var y = AllocateOutput(OpShapes.RmsNorm(x, g));
        RmsNormCpu.Run(_workers, Width, KernelParameters.RmsNorm(x, fuseSilu), x.Elements, g.F32, y.Elements);
        return y;
    }

    public long CountNonFinite(Tensor input)
    {
        var x = Own(input, nameof(input));
        return ElementwiseCpu.CountNonFinite(_workers, x.Elements, x.ElementCount);
    }

    public Tensor SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec)
    {
        var x = Own(current, nameof(current));
        var before = previous is null ? null : Own(previous, nameof(previous));
        var shape = OpShapes.SpaceToDepth(x, before, spec);
        var y = AllocateOutput(shape);
        var p = KernelParameters.PixelShuffle(x.Shape, shape, spec, frame: 0, hasPrevious: before is not null);
        PixelShuffleCpu.SpaceToDepth(_workers, p, before is null ? default : before.Elements, x.Elements, y.Elements);
        return y;
    }

    public Tensor DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame)
    {
        var x = Own(input, nameof(input));
        var shape = OpShapes.DepthToSpace(x, spec, frame);
        var y = AllocateOutput(shape);
        PixelShuffleCpu.DepthToSpace(_workers, KernelParameters.PixelShuffle(x.Shape, shape, spec, frame, hasPrevious: false), x.Elements, y.Elements);
        return y;
    }

    public Tensor SliceChannels(Tensor input, int start, int count)
    {
        var x = Own(input, nameof(input));
        var y = (CpuTensor)Allocate(OpShapes.SliceChannels(x, start, count), x.DType);
        int size = x.DType.ByteSize();
        OpShapes.CopyChannels(new ReadOnlySpan<byte>(x.Bytes, checked((int)x.ByteLength)), x.Shape, start, count,
            new Span<byte>(y.Bytes, checked((int)y.ByteLength)), size);
        return y;
    }

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        var (tq, tk, tv) = (Own(q, nameof(q)), Own(k, nameof(k)), Own(v, nameof(v)));
        OpShapes.Attention(tq, tk, tv);
        return RunAttention(tq, tk, tv, scale, null);
    }

    public AttentionChunk AttentionOverKeys(Tensor q, Tensor k, Tensor v, float scale)
    {
        var (tq, tk, tv) = (Own(q, nameof(q)), Own(k, nameof(k)), Own(v, nameof(v)));
        var (_, lseShape) = OpShapes.AttentionOverKeys(tq, tk, tv);
        var lse = (CpuTensor)Allocate(lseShape);
        try
        {
            return new AttentionChunk(RunAttention(tq, tk, tv, scale, lse), lse);
        }
        catch
        {
            lse.Dispose();
            throw;
        }
    }

    /// <summary>The attention kernel on checked operands; <paramref name="logSumExp"/> (fp32) receives each query's log-sum-exp when given.</summary>
    private CpuTensor RunAttention(CpuTensor tq, CpuTensor tk, CpuTensor tv, float scale, CpuTensor? logSumExp)
    {
        var p = KernelParameters.Attention(tq, tk, scale);
        float* lse = logSumExp is null ? null : logSumExp.F32;
        if (tq.DType == DType.F32 && tk.DType == DType.F32 && tv.DType == DType.F32 && StorageDType == DType.F32)
        {
            var y = AllocateOutput(tq.Shape);
            AttentionCpu.Run(_workers, Width, p, tq.F32, tk.F32, tv.F32, y.F32, lse);
            return y;
        }
        // 16-bit: the attention kernel packs whole key and value panels, so its operands are widened whole (a
        // mid-block's tensors, the latent's size, small beside the convolutions').
        using var q32 = Widened(tq);
        using var k32 = Widened(tk);
        using var v32 = Widened(tv);
        using var y32 = (CpuTensor)Allocate(tq.Shape);
        AttentionCpu.Run(_workers, Width, p, q32.F32, k32.F32, v32.F32, y32.F32, lse);
        var result = AllocateOutput(tq.Shape);
        result.Elements.Write(0, y32.F32, checked((int)y32.ElementCount));
        return result;
    }

    public Tensor Unary(UnaryOp op, Tensor input)
    {
        var x = Own(input, nameof(input));
        var y = AllocateOutput(x.Shape);
        switch (op)
        {
            case UnaryOp.Silu: ElementwiseCpu.Map(_workers, Width, new SiluFunction(), x.Elements, y.Elements, x.ElementCount); break;
            case UnaryOp.Relu: ElementwiseCpu.Map(_workers, Width, new ReluFunction(), x.Elements, y.Elements, x.ElementCount); break;
            case UnaryOp.TanhClamp3: ElementwiseCpu.Map(_workers, Width, new TanhClamp3Function(), x.Elements, y.Elements, x.ElementCount); break;
            case UnaryOp.ClampUnit: ElementwiseCpu.Map(_workers, Width, new ClampUnitFunction(), x.Elements, y.Elements, x.ElementCount); break;
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
        var y = AllocateOutput(ta.Shape);
        ElementwiseCpu.Add(_workers, Width, ta.Elements, tb.Elements, y.Elements, ta.ElementCount);
        return y;
    }

    public Tensor ScaleShift(Tensor input, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        var y = AllocateOutput(x.Shape);
        ElementwiseCpu.Map(_workers, Width, new AffineFunction(scale, shift, silu: false), x.Elements, y.Elements, x.ElementCount);
        return y;
    }

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        var shape = OpShapes.ImageToTensor(rgb.Length, batch, height, width);
        var y = AllocateOutput(shape);
        fixed (byte* pixels = rgb)
            ElementwiseCpu.ImageToTensor(_workers, pixels, y.Elements, batch, height, width, scale, shift);
        return y;
    }

    public long TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        OpShapes.TensorToImage(x, rgb.Length);
        fixed (byte* pixels = rgb)
            ElementwiseCpu.TensorToImage(_workers, x.Elements, pixels, x.Shape.N, x.Shape.H, x.Shape.W, scale, shift);
        return CountNonFinite(x);
    }

    private CpuTensor Own(Tensor tensor, string name) => Tensor.Require<CpuTensor>(tensor, this, name);

    public bool TryGetElements(Tensor tensor, out Span<float> elements)
    {
        if (tensor is CpuTensor t && ReferenceEquals(t.Owner, this) && !t.IsDisposed && t.DType == DType.F32)
        {
            elements = new Span<float>(t.F32, checked((int)t.ElementCount));
            return true;
        }
        elements = default;
        return false;
    }

    /// <summary>
    /// A per-channel vector (bias, norm affine, scale, shift) as fp32, which the kernels read it in: itself, or a
    /// widened copy in <paramref name="copy"/> (the caller disposes it) when it was stored in 16 bits.
    /// </summary>
    private CpuTensor AsF32(Tensor tensor, string name, out CpuTensor? copy)
    {
        var t = Own(tensor, name);
        copy = t.DType == DType.F32 ? null : Widened(t);
        return copy ?? t;
    }

    /// <summary>An fp32 copy of a tensor (for the ops that read whole operands).</summary>
    private CpuTensor Widened(CpuTensor t)
    {
        var copy = (CpuTensor)Allocate(t.Shape);
        t.Elements.Read(0, copy.F32, checked((int)t.ElementCount));
        return copy;
    }

    public void Dispose()
    {
        if (_widenedWeight != 0) HostMemory.Free(_widenedWeight, _widenedWeightBytes);
        _widenedWeight = 0;
        _workers.Dispose();
        _memory.Dispose();
        _pool.Dispose();
    }
}
