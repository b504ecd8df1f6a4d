using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using NativeVae.Kernels.Gpu;
using NativeVae.Tensors;

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
/// Ops are submitted to the accelerator's default stream in order; <see cref="Download"/> synchronises.
/// One backend may be used from one thread at a time.
/// </summary>
internal sealed class IlgpuBackend : IBackend
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly DeviceBufferPool _pool;
    private readonly Conv2dLauncher _conv2d;
    private readonly GroupNormLauncher _groupNorm;
    private readonly AttentionLauncher _attention;
    private readonly ElementwiseLauncher _elementwise;

    public IlgpuBackend(DevicePreference preference = DevicePreference.Auto, IlgpuKernelChoice? kernels = null)
    {
        _context = Context.Create(builder => builder.Default().EnableAlgorithms());
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
        Name = Kind == BackendKind.IlgpuCuda ? $"ILGPU CUDA ({_accelerator.Name})" : "ILGPU CPU accelerator";
        Kernels = kernels ?? IlgpuKernelChoice.For(_accelerator.AcceleratorType);
        _pool = new DeviceBufferPool(_accelerator);
        _conv2d = new Conv2dLauncher(_accelerator);
        _groupNorm = new GroupNormLauncher(_accelerator);
        _attention = new AttentionLauncher(_accelerator);
        _elementwise = new ElementwiseLauncher(_accelerator);
    }

    public string Name { get; }

    public BackendKind Kind { get; }

    public IlgpuKernelChoice Kernels { get; }

    public Accelerator Accelerator => _accelerator;

    public MemoryStats Memory => _pool.Stats;

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
                return context.GetCPUDevice(0).CreateAccelerator(context);
        }
    }

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
        if (dtype != DType.F32)
            throw new NotSupportedException($"upload to {dtype} is not supported yet on {Name}");
        var tensor = (IlgpuTensor)Allocate(shape, dtype);
        tensor.F32.CopyFromCPU(data);
        return tensor;
    }

    public void Download(Tensor tensor, Span<float> destination)
    {
        var t = Own(tensor, nameof(tensor));
        if (destination.Length != t.ElementCount)
            throw new ArgumentException($"download of tensor {t} into {destination.Length} values", nameof(destination));
        _accelerator.Synchronize();
        t.F32.CopyToCPU(destination);
    }

    public void Synchronize() => _accelerator.Synchronize();

    public Tensor Conv2d(Tensor input, Tensor weight, Tensor? bias, Conv2dSpec spec, Tensor? residual = null)
    {
        var x = Own(input, nameof(input));
        var w = Own(weight, nameof(weight));
        RequireRank4(x, "conv2d input");
        RequireRank4(w, "conv2d weight");
        int kernel = w.Shape[2];
        if (w.Shape[3] != kernel)
            throw new NotSupportedException($"conv2d weight {w.Shape}: only square kernels are supported");
        if (w.Shape[1] != x.Shape.C)
            throw new ArgumentException($"conv2d weight {w.Shape} expects {w.Shape[1]} input channels, input is {x.Shape}");
        if (spec.Stride < 1)
            throw new ArgumentException($"conv2d stride {spec.Stride} must be at least 1", nameof(spec));
        int cout = w.Shape[0];
        int ho = spec.OutputHeight(x.Shape.H, kernel);
        int wo = spec.OutputWidth(x.Shape.W, kernel);
        var outShape = TensorShape.Nchw(x.Shape.N, cout, ho, wo);
        IlgpuTensor? b = bias is null ? null : Own(bias, nameof(bias));
        if (b is not null && (b.Shape.Rank != 1 || b.Shape[0] != cout))
            throw new ArgumentException($"conv2d bias {b.Shape} does not match {cout} output channels");
        IlgpuTensor? r = residual is null ? null : Own(residual, nameof(residual));
        if (r is not null && r.Shape != outShape)
            throw new ArgumentException($"conv2d residual {r.Shape} does not match the output {outShape}");

        var y = (IlgpuTensor)Allocate(outShape);
        var p = new Conv2dParams
        {
            Batch = x.Shape.N,
            InChannels = x.Shape.C,
            InHeight = x.Shape.H,
            InWidth = x.Shape.W,
            OutChannels = cout,
            OutHeight = ho,
            OutWidth = wo,
            Kernel = kernel,
            Stride = spec.Stride,
            PadTop = spec.PadTop,
            PadLeft = spec.PadLeft,
            Upsample2x = spec.Upsample2x ? 1 : 0,
            HasBias = b is null ? 0 : 1,
            HasResidual = r is null ? 0 : 1,
        };
        _conv2d.Run(Kernels.Conv2d, p, x.F32, w.F32, b?.F32 ?? y.F32, r?.F32 ?? y.F32, y.F32);
        return y;
    }

    public Tensor GroupNorm(Tensor input, Tensor gamma, Tensor beta, int groups, float eps, bool fuseSilu)
    {
        var x = Own(input, nameof(input));
        RequireRank4(x, "group_norm input");
        int c = x.Shape.C;
        if (groups <= 0 || c % groups != 0)
            throw new ArgumentException($"group_norm: {groups} groups do not divide {c} channels of {x.Shape}", nameof(groups));
        var g = Own(gamma, nameof(gamma));
        var bt = Own(beta, nameof(beta));
        if (g.ElementCount != c || bt.ElementCount != c)
            throw new ArgumentException($"group_norm affine {g.Shape}/{bt.Shape} does not match {c} channels");
        var y = (IlgpuTensor)Allocate(x.Shape);
        using var stats = (IlgpuTensor)Allocate(new TensorShape(x.Shape.N, groups, 2));
        var p = new GroupNormParams
        {
            Batch = x.Shape.N,
            Channels = c,
            Spatial = checked(x.Shape.H * x.Shape.W),
            Groups = groups,
            Eps = eps,
            FuseSilu = fuseSilu ? 1 : 0,
        };
        _groupNorm.Run(Kernels.GroupNorm, p, x.F32, g.F32, bt.F32, stats.F32, y.F32);
        return y;
    }

    public Tensor Attention(Tensor q, Tensor k, Tensor v, float scale)
    {
        var tq = Own(q, nameof(q));
        var tk = Own(k, nameof(k));
        var tv = Own(v, nameof(v));
        RequireRank4(tq, "attention q");
        if (tk.Shape != tq.Shape || tv.Shape != tq.Shape)
            throw new ArgumentException($"attention q {tq.Shape}, k {tk.Shape}, v {tv.Shape} must have one shape");
        var y = (IlgpuTensor)Allocate(tq.Shape);
        var p = new AttentionParams
        {
            Batch = tq.Shape.N,
            Channels = tq.Shape.C,
            Tokens = checked(tq.Shape.H * tq.Shape.W),
            Scale = scale,
        };
        _attention.Run(Kernels.Attention, p, tq.F32, tk.F32, tv.F32, y.F32);
        return y;
    }

    public Tensor Unary(UnaryOp op, Tensor input)
    {
        var x = Own(input, nameof(input));
        var y = (IlgpuTensor)Allocate(x.Shape);
        var kind = op switch
        {
            UnaryOp.Silu => UnaryKind.Silu,
            UnaryOp.Relu => UnaryKind.Relu,
            UnaryOp.TanhClamp3 => UnaryKind.TanhClamp3,
            _ => throw new ArgumentOutOfRangeException(nameof(op), op, "unknown unary op"),
        };
        _elementwise.Unary(kind, x.F32, y.F32);
        return y;
    }

    public Tensor Add(Tensor a, Tensor b)
    {
        var ta = Own(a, nameof(a));
        var tb = Own(b, nameof(b));
        if (ta.Shape != tb.Shape)
            throw new ArgumentException($"add of tensors with shapes {ta.Shape} and {tb.Shape}");
        var y = (IlgpuTensor)Allocate(ta.Shape);
        _elementwise.Add(ta.F32, tb.F32, y.F32);
        return y;
    }

    public Tensor ScaleShift(Tensor input, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        var y = (IlgpuTensor)Allocate(x.Shape);
        _elementwise.ScaleShift(x.F32, y.F32, scale, shift);
        return y;
    }

    public Tensor ImageToTensor(ReadOnlySpan<byte> rgb, int batch, int height, int width, float scale, float shift)
    {
        long expected = checked((long)batch * height * width * RgbChannels);
        if (rgb.Length != expected)
            throw new ArgumentException($"image bytes: got {rgb.Length}, expected {batch}x{height}x{width}x3 = {expected}", nameof(rgb));
        var y = (IlgpuTensor)Allocate(TensorShape.Nchw(batch, RgbChannels, height, width));
        using var staging = (IlgpuTensor)Allocate(new TensorShape(rgb.Length), DType.F32);
        var bytes = staging.Bytes.SubView(0, rgb.Length);
        bytes.CopyFromCPU(rgb);
        _elementwise.ImageToTensor(bytes, y.F32, batch, height, width, scale, shift);
        return y;
    }

    public void TensorToImage(Tensor input, Span<byte> rgb, float scale, float shift)
    {
        var x = Own(input, nameof(input));
        RequireRank4(x, "image tensor");
        if (x.Shape.C != RgbChannels)
            throw new ArgumentException($"image tensor {x.Shape} must have 3 channels");
        if (rgb.Length != x.ElementCount)
            throw new ArgumentException($"image bytes: got {rgb.Length}, tensor {x.Shape} needs {x.ElementCount}", nameof(rgb));
        using var staging = (IlgpuTensor)Allocate(new TensorShape(rgb.Length), DType.F32);
        var bytes = staging.Bytes.SubView(0, rgb.Length);
        _elementwise.TensorToImage(x.F32, bytes, x.Shape.N, x.Shape.H, x.Shape.W, scale, shift);
        _accelerator.Synchronize();
        bytes.CopyToCPU(rgb);
    }

    private const int RgbChannels = 3;

    private IlgpuTensor Own(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is not IlgpuTensor t || !ReferenceEquals(t.Owner, this))
            throw new ArgumentException($"tensor '{name}' {tensor} belongs to another backend than {Name}", name);
        if (t.IsDisposed)
            throw new ObjectDisposedException(name, $"tensor '{name}' {tensor.Shape} was disposed");
        return t;
    }

    private static void RequireRank4(Tensor t, string what)
    {
        if (t.Shape.Rank != 4)
            throw new ArgumentException($"{what} must be [N, C, H, W], got {t.Shape}");
    }

    public void Dispose()
    {
        _accelerator.Synchronize();
        _pool.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }
}
