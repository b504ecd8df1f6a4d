using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using NativeVae.Kernels;
using NativeVae.Kernels.Gpu;
using NativeVae.Core;

namespace NativeVae.Backends.Ilgpu;

/// <summary>Which kernel version each op uses; tests pin versions, the backend picks per device otherwise.</summary>
internal sealed record IlgpuKernelChoice(Conv2dVersion Conv2d, GroupNormVersion GroupNorm, AttentionVersion Attention)
{
    /// <summary>Shared-memory versions pay on a GPU; on the CPU emulator barriers cost ~100x, so plain versions win.</summary>
    public static IlgpuKernelChoice For(AcceleratorType type) => type == AcceleratorType.CPU
        ? new(Conv2dVersion.Direct, GroupNormVersion.Simple, AttentionVersion.RowPerThread)
        : new(Conv2dVersion.SharedTile, GroupNormVersion.GroupReduce, AttentionVersion.SharedTile);
}

/// <summary>
/// The op interface on ILGPU: CUDA when present, else ILGPU's CPU accelerator. Kernels are loaded once, here.
/// Ops are queued in order on the backend's own stream; only a download waits for them (IlgpuBackend.Transfers.cs).
/// One backend may be used from one thread at a time. With a 16-bit <see cref="StorageDType"/>, weights and
/// activations are stored in 16 bits and convolutions run on tensor cores (IlgpuBackend.HalfStorage.cs).
/// </summary>
internal sealed partial class IlgpuBackend : IBackend, IBackendDiagnostics
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly BufferPool<MemoryBuffer1D<byte, Stride1D.Dense>> _pool;
    private readonly Conv2dLauncher _conv2d;
    private readonly GroupNormLauncher _groupNorm;
    private readonly AttentionLauncher _attention;
    private readonly ElementwiseLauncher _elementwise;
    private readonly RmsNormLauncher _rmsNorm;
    private readonly PixelShuffleLauncher _pixelShuffle;
    private readonly AcceleratorStream _stream;
    private readonly PinnedStaging _staging;

    /// <param name="storage">How weights and activations are stored: fp32, or bf16/fp16 (fp32 arithmetic in every case).</param>
    public IlgpuBackend(DevicePreference preference = DevicePreference.Auto, IlgpuKernelChoice? kernels = null,
        DType storage = DType.F32)
    {
        RequireStorage(storage);
        StorageDType = storage;
        _context = Context.Create(builder => KernelCompilation.Configure(builder));
        try
        {
            _accelerator = CreateAccelerator(_context, preference);
        }
        catch
        {
            _context.Dispose();
            throw;
        }
        Kind = _accelerator.AcceleratorType == AcceleratorType.Cuda ? BackendKind.IlgpuCuda : BackendKind.IlgpuCpu;
        Name = (Kind == BackendKind.IlgpuCuda ? $"ILGPU CUDA ({_accelerator.Name})" : "ILGPU CPU accelerator")
               + (storage == DType.F32 ? "" : $", {storage.ShortName()} storage");
        Kernels = kernels ?? IlgpuKernelChoice.For(_accelerator.AcceleratorType);
        _pool = new(bytes => _accelerator.Allocate1D<byte>(bytes), (buffer, _) => buffer.Dispose());
        _stream = _accelerator.CreateStream();
        _staging = new PinnedStaging(_accelerator);
        _conv2d = new Conv2dLauncher(_accelerator, _stream);
        _groupNorm = new GroupNormLauncher(_accelerator, _stream);
        _attention = new AttentionLauncher(_accelerator, _stream);
        _elementwise = new ElementwiseLauncher(_accelerator, _stream);
        _rmsNorm = new RmsNormLauncher(_accelerator, _stream);
        _pixelShuffle = new PixelShuffleLauncher(_accelerator, _stream);
    }

    public string Name { get; }

    public DType StorageDType { get; }

    public BackendKind Kind { get; }

    /// <summary>
    /// Normalises in a pass of its own (no fused NormConv2d yet); capacity is the accelerator's memory, and on CUDA the
    /// free memory is the driver's figure (other processes' allocations excluded).
    /// </summary>
    public BackendCapabilities Capabilities => new(FusesNormIntoConv: false, _accelerator.MemorySize,
        FreeMemoryBytes: _accelerator is ILGPU.Runtime.Cuda.CudaAccelerator cuda ? cuda.GetFreeMemory() : null);

    public IlgpuKernelChoice Kernels { get; }

    public Accelerator Accelerator => _accelerator;

    public MemoryStats Memory => _pool.Stats;

    /// <summary>Frees the pooled buffers and restarts <see cref="Memory"/>'s peak at the live bytes.</summary>
    public void ResetPeakMemory() => _pool.ResetPeak();

    private static Accelerator CreateAccelerator(Context context, DevicePreference preference)
    {
        var cuda = context.GetCudaDevices();
        switch (preference)
        {
            case DevicePreference.Cpu:
                throw new ArgumentException("device 'cpu' is the SIMD CPU backend (CpuBackend, or BackendFactory), not ILGPU", nameof(preference));
            case DevicePreference.Cuda when cuda.Count == 0:
                throw new InvalidOperationException("device 'cuda' was requested but ILGPU found no CUDA GPU");
            case DevicePreference.Cuda:
            case DevicePreference.Auto when cuda.Count > 0:
                return cuda[0].CreateAccelerator(context);
            default:
                return SimulatedGpu.CreateAccelerator(context);
        }
    }

    /// <summary>
    /// The CPU accelerator's default device allows 16 threads per group; the grouped kernels use 256 (as on a GPU),
    /// so the emulator is configured as warps of 32, 8 warps per group, one multiprocessor per core.
    /// </summary>
    private static readonly CPUDevice SimulatedGpu = new(
        numThreadsPerWarp: SimulatedWarpSize,
        numWarpsPerMultiprocessor: SimulatedWarpsPerGroup,
        numMultiprocessors: Environment.ProcessorCount);

    private const int SimulatedWarpSize = 32;
    private const int SimulatedWarpsPerGroup = 8;

    public Tensor Allocate(TensorShape shape, DType dtype = DType.F32)
    {
        if (shape.ElementCount > int.MaxValue)
            throw new NotSupportedException(
                $"tensor {shape} has {shape.ElementCount} elements, more than one ILGPU launch addresses; tile the image");
        return new IlgpuTensor(this, _pool, shape, dtype);
    }

    public Tensor Upload(ReadOnlySpan<float> data, TensorShape shape, DType dtype = DType.F32)
    {
        if (data.Length != shape.ElementCount)
            throw new ArgumentException($"upload of {data.Length} values into a tensor of shape {shape}", nameof(data));
        RequireStorage(dtype);
        var tensor = (IlgpuTensor)Allocate(shape, dtype);
        if (tensor.IsHalf) UploadHalf(tensor, data);
        else CopyIn(tensor.Bytes, MemoryMarshal.AsBytes(data));
        return tensor;
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        var t = Own(tensor, nameof(tensor));
        if (destination.Length != t.ElementCount)
            throw new ArgumentException($"download of tensor {t} into {destination.Length} values", nameof(destination));
        if (t.IsHalf) DownloadHalf(t, destination);
        else CopyOut(t.Bytes, destination);
    }

    public void Synchronize() => Wait();

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var (x, w, b, r, outShape, half) = ConvOperands(input, weight, bias, spec, residual);
        if (half != DType.F32) return Conv2dHalf(half, x, w, b, spec, r, outShape, withStatistics: false, out _);
        var y = (IlgpuTensor)Allocate(outShape);
        var p = KernelParameters.Conv2d(x, w, spec, outShape, b is not null, r is not null);
        // Absent bias/residual: pass any valid view, the flags keep the kernel from reading it.
        _conv2d.Run(Kernels.Conv2d, p, x.F32, w.F32, b?.F32 ?? y.F32, r?.F32 ?? y.F32, y.F32);
        return y;
    }

    /// <summary>A convolution's operands as this backend's tensors, its output shape, and its 16-bit format (F32: none).</summary>
    private (IlgpuTensor X, IlgpuTensor W, IlgpuTensor? B, IlgpuTensor? R, TensorShape Out, DType Half) ConvOperands(Tensor input,
        Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual)
    {
        var x = Own(input, nameof(input));
        var w = Own(weight, nameof(weight));
        IlgpuTensor? b = bias is null ? null : Own(bias, nameof(bias));
        IlgpuTensor? r = residual is null ? null : Own(residual, nameof(residual));
        return (x, w, b, r, OpShapes.Conv2d(x, w, b, spec, r), HalfOf("conv2d", x, w, r));
    }

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu)
    {
        var y = GroupNormWithStatistics(input, gamma, beta, groups, eps, fuseSilu, out var stats);
        stats.Dispose();
        return y;
    }

    public Tensor GroupNormWithStatistics(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu, out Tensor stats)
    {
        var x = Own(input, nameof(input));
        var g = Own(gamma, nameof(gamma));
        var bt = Own(beta, nameof(beta));
        var shape = OpShapes.GroupNorm(x, g, bt, groups);
        if (x.IsHalf)
        {
            var normed = GroupNormHalf(x.DType, x, g, bt, groups, eps, fuseSilu, out var halfStats);
            stats = halfStats;
            return normed;
        }
        var y = (IlgpuTensor)Allocate(shape);
        var statsTensor = (IlgpuTensor)Allocate(new TensorShape(x.Shape.N, groups, 2));
        var p = KernelParameters.GroupNorm(x, groups, eps, fuseSilu);
        _groupNorm.Run(Kernels.GroupNorm, p, x.F32, g.F32, bt.F32, statsTensor.F32, y.F32);
        stats = statsTensor;
        return y;
    }

    public Tensor GroupNormStatistics(Tensor input, int groups)
    {
        var x = Own(input, nameof(input));
        var shape = OpShapes.GroupNormStatistics(x, groups);
        if (x.IsHalf) return ViaSingle(x.DType, [x], t => GroupNormStatistics(t[0], groups));
        var stats = (IlgpuTensor)Allocate(shape);
        var p = KernelParameters.GroupNorm(x, groups, moments: true);
        _groupNorm.Statistics(Kernels.GroupNorm, p, x.F32, stats.F32);
        return stats;
    }

    public Tensor ChannelAffine(Tensor input, Tensor scale, Tensor shift, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        var sc = Own(scale, nameof(scale));
        var sh = Own(shift, nameof(shift));
        var shape = OpShapes.ChannelAffine(x, sc, sh);
        if (x.IsHalf) return ViaSingle(x.DType, [x], t => ChannelAffine(t[0], sc, sh, fuseSilu));
        var y = (IlgpuTensor)Allocate(shape);
        var p = new ChannelAffineParams
        {
            Rows = x.Shape.N * x.Shape.C,
            Spatial = checked(x.Shape.H * x.Shape.W),
            FuseSilu = fuseSilu ? 1 : 0,
        };
        _groupNorm.ChannelAffine(p, x.F32, sc.F32, sh.F32, y.F32);
        return y;
    }

    public Tensor RmsNorm(Tensor input, Tensor gamma, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        var g = Own(gamma, nameof(gamma));
        var shape = OpShapes.RmsNorm(x, g);
        if (x.IsHalf) return RmsNormHalf(x.DType, x, g, fuseSilu);
        var y = (IlgpuTensor)Allocate(shape);
        _rmsNorm.Run(KernelParameters.RmsNorm(x, fuseSilu), x.F32, g.F32, y.F32);
        return y;
    }

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        var tq = Own(q, nameof(q));
        var tk = Own(k, nameof(k));
        var tv = Own(v, nameof(v));
        var shape = OpShapes.Attention(tq, tk, tv);
        var half = HalfOf("attention", tq, tk, tv);
        if (half != DType.F32) return AttentionHalf(half, tq, tk, tv, scale);
        var y = (IlgpuTensor)Allocate(shape);
        var p = KernelParameters.Attention(tq, tk, scale);
        _attention.Run(Kernels.Attention, p, tq.F32, tk.F32, tv.F32, y.F32);
        return y;
    }

    public Tensor Unary(UnaryOp op, Tensor input)
    {
        var x = Own(input, nameof(input));
        var kind = op switch
        {
            UnaryOp.Silu => UnaryKind.Silu,
            UnaryOp.Relu => UnaryKind.Relu,
            UnaryOp.TanhClamp3 => UnaryKind.TanhClamp3,
            UnaryOp.ClampUnit => UnaryKind.ClampUnit,
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown unary op"),
        };
        if (x.IsHalf)
            return ElementwiseHalf(x.DType, [x], (bf16, layout, t, y) => Half.Elementwise.Unary(bf16, layout, kind, t[0].Words, y));
        var y = (IlgpuTensor)Allocate(x.Shape);
        _elementwise.Unary(kind, x.F32, y.F32);
        return y;
    }

    public Tensor Add(Tensor a, Tensor b)
    {
        var ta = Own(a, nameof(a));
        var tb = Own(b, nameof(b));
        var shape = OpShapes.SameShape(ta, tb, "add");
        var half = HalfOf("add", ta, tb);
        if (half != DType.F32)
            return ElementwiseHalf(half, [ta, tb], (bf16, layout, t, y) => Half.Elementwise.Add(bf16, layout, t[0].Words, t[1].Words, y));
        var y = (IlgpuTensor)Allocate(shape);
        _elementwise.Add(ta.F32, tb.F32, y.F32);
        return y;
    }

    public Tensor ScaleShift(Tensor input, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        if (x.IsHalf)
            return ElementwiseHalf(x.DType, [x], (bf16, layout, t, y) => Half.Elementwise.ScaleShift(bf16, layout, t[0].Words, y, scale, shift));
        var y = (IlgpuTensor)Allocate(x.Shape);
        _elementwise.ScaleShift(x.F32, y.F32, scale, shift);
        return y;
    }

    public long CountNonFinite(Tensor input)
    {
        var x = Own(input, nameof(input));
        using var single = x.IsHalf ? ToSingle(x) : null;
        using var count = (IlgpuTensor)Allocate(new TensorShape(1));
        var counter = count.Bytes.Cast<int>();
        counter.MemSetToZero(_stream);
        _elementwise.CountNonFinite((single ?? x).F32, counter);
        int result = 0;
        CopyOut(count.Bytes, MemoryMarshal.CreateSpan(ref result, 1));
        return result;
    }

    public Tensor SpaceToDepth(Tensor current, Tensor? previous, PixelShuffleSpec spec)
    {
        var x = Own(current, nameof(current));
        var before = previous is null ? null : Own(previous, nameof(previous));
        var shape = OpShapes.SpaceToDepth(x, before, spec);
        if (x.IsHalf || before is { IsHalf: true })
            return ViaSingle(x.IsHalf ? x.DType : before!.DType, before is null ? [x] : [x, before], t => SpaceToDepth(t[0], before is null ? null : t[1], spec));
        var y = (IlgpuTensor)Allocate(shape);
        var p = KernelParameters.PixelShuffle(x.Shape, shape, spec, frame: 0, hasPrevious: before is not null);
        _pixelShuffle.SpaceToDepth(p, (before ?? x).F32, x.F32, y.F32);
        return y;
    }

    public Tensor DepthToSpace(Tensor input, PixelShuffleSpec spec, int frame)
    {
        var x = Own(input, nameof(input));
        var shape = OpShapes.DepthToSpace(x, spec, frame);
        if (x.IsHalf) return ViaSingle(x.DType, [x], t => DepthToSpace(t[0], spec, frame));
        var y = (IlgpuTensor)Allocate(shape);
        _pixelShuffle.DepthToSpace(KernelParameters.PixelShuffle(x.Shape, shape, spec, frame, hasPrevious: false), x.F32, y.F32);
        return y;
    }

    public Tensor SliceChannels(Tensor input, int start, int count)
    {
        var x = Own(input, nameof(input));
        var shape = OpShapes.SliceChannels(x, start, count);
        if (x.IsHalf) return ViaSingle(x.DType, [x], t => SliceChannels(t[0], start, count));
        var y = (IlgpuTensor)Allocate(shape);
        var s = x.Shape;
        long plane = (long)s.H * s.W, run = count * plane;
        for (int n = 0; n < s.N; n++)
            x.F32.SubView((n * (long)s.C + start) * plane, run).CopyTo(_stream, y.F32.SubView(n * run, run));
        return y;
    }

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        var y = (IlgpuTensor)Allocate(OpShapes.ImageToTensor(rgb.Length, batch, height, width));
        using var staging = (IlgpuTensor)Allocate(new TensorShape(rgb.Length), DType.F32);
        var bytes = staging.Bytes.SubView(0, rgb.Length);
        CopyIn(bytes, rgb);
        _elementwise.ImageToTensor(bytes, y.F32, batch, height, width, scale, shift);
        return y;
    }

    /// <summary>The pixels and the count of non-finite values come back in one download, after one wait.</summary>
    public long TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        OpShapes.TensorToImage(x, rgb.Length);
        using var single = x.IsHalf ? ToSingle(x) : null;
        var image = single ?? x;
        // The count first (an int must be aligned), the pixels after it.
        using var staging = (IlgpuTensor)Allocate(new TensorShape(1 + DeviceMath.CeilDiv(rgb.Length, sizeof(float))), DType.F32);
        var counter = staging.Bytes.SubView(0, sizeof(int));
        var bytes = staging.Bytes.SubView(sizeof(int), rgb.Length);
        counter.MemSetToZero(_stream);
        _elementwise.TensorToImage(image.F32, bytes, counter.Cast<int>(), x.Shape.N, x.Shape.H, x.Shape.W, scale, shift);
        var downloaded = CopyOut([counter, bytes]);
        downloaded[sizeof(int)..].CopyTo(rgb);
        return MemoryMarshal.Read<int>(downloaded);
    }

    private IlgpuTensor Own(Tensor tensor, string name) => Tensor.Require<IlgpuTensor>(tensor, this, name);

    public void Dispose()
    {
        _stream.Synchronize();
        DisposePinnedBlocks();
        _staging.Dispose();
        _pool.Dispose();
        _stream.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }
}
