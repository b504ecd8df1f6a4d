using NativeVae.Kernels.Cpu;
using NativeVae.Core;

namespace NativeVae.Backends.Cpu;

/// <summary>A tensor in 64-byte aligned native memory rented from the CPU backend's pool (or its call plan).</summary>
internal sealed unsafe class CpuTensor : Tensor
{
    private readonly CallMemoryPlan _pool;
    private long _capacity;
    private nint _buffer;
    private bool _disposed;

    public CpuTensor(CpuBackend owner, CallMemoryPlan pool, TensorShape shape, DType dtype)
        : base(shape, dtype)
    {
        Owner = owner;
        _pool = pool;
        (_buffer, _capacity) = pool.Rent(ByteLength);
    }

    public CpuBackend Owner { get; }

    internal override IBackend Backend => Owner;

    public override bool IsDisposed => _disposed;

    /// <summary>The elements as fp32; the tensor must be F32.</summary>
    public float* F32
    {
        get
        {
            if (DType != DType.F32)
                throw new NotSupportedException($"tensor {this} is {DType}, the op needs F32 on {Owner.Name}");
            return (float*)Buffer;
        }
    }

    /// <summary>The kernels' view of the elements, in their storage type.</summary>
    public StoredElements Elements => new(Bytes, CpuBackend.StorageOf(DType));

    /// <summary>The raw bytes.</summary>
    public byte* Bytes
    {
        get
        {
            return (byte*)Buffer;
        }
    }

    /// <summary>
    /// Per-channel moments of the values, when the Winograd convolution that wrote this tensor gathered them: the
    /// backend's own NormConv2d of it folds them instead of a statistics pass. Valid for the tensor's life, since ops
    /// never write a tensor after creating it.
    /// </summary>
    public ChannelMoments? Moments { get; set; }

    /// <summary>
    /// This tensor's values packed for the convolution micro-kernel, made on its first use as a conv weight and
    /// kept with it. Weights are uploaded once and never written afterwards (ops only write fresh outputs), so
    /// the packing stays valid for the tensor's life.
    /// </summary>
    public Conv2dPackedWeights? PackedConvWeights { get; private set; }

    /// <summary>
    /// Keeps <paramref name="packed"/> as this weight's only copy: the row-major buffer is freed (not pooled), since
    /// convolutions read a weight only through its packing; a later read of the tensor unpacks it again (and drops
    /// the packing). Without this every conv weight sat in memory twice (SD's VAE: 2 x 319 MiB).
    /// </summary>
    public void AdoptPacking(Conv2dPackedWeights packed)
    {
        nint buffer = Buffer;
        PackedConvWeights = packed;
        _buffer = 0;
        _pool.Free(buffer, _capacity);
    }

    /// <summary>The row-major buffer, unpacked again first (and the packing dropped) if only the packing was kept.</summary>
    private nint Buffer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_buffer == 0)
            {
                // Back to the row-major copy only: a weight that the direct path packed and the Winograd path (or a
                // read) needs row-major would otherwise be held twice; the direct path packs it again if it returns.
                var packed = PackedConvWeights!;
                (_buffer, _capacity) = _pool.Rent(ByteLength);
                packed.Unpack((float*)_buffer);
                PackedConvWeights = null;
                Owner.ReleasePackedWeights(packed.Bytes);
                packed.Dispose();
            }
            return _buffer;
        }
    }

    public override void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (PackedConvWeights is { } packed)
        {
            Owner.ReleasePackedWeights(packed.Bytes);
            packed.Dispose();
            PackedConvWeights = null;
        }
        if (_buffer != 0) _pool.Return(_buffer, _capacity);
        _buffer = 0;
    }
}
