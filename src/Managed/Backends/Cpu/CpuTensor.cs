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
    /// A prepared convolution weight (<see cref="CpuBackend.PrepareConvWeight"/>): its values packed for the micro-kernel,
    /// its only copy, fixed at creation; null for every other tensor. Convolutions read it packed, and
    /// <see cref="CpuBackend.Download"/> unpacks it; nothing else reads its elements.
    /// </summary>
    public Conv2dPackedWeights? PackedConvWeights { get; }

    /// <summary>A weight held only as <paramref name="packed"/> (which it owns), of <paramref name="shape"/> in fp32.</summary>
    public CpuTensor(CpuBackend owner, CallMemoryPlan pool, TensorShape shape, Conv2dPackedWeights packed)
        : base(shape, DType.F32)
    {
        Owner = owner;
        _pool = pool;
        PackedConvWeights = packed;
    }

    /// <summary>All its values as row-major fp32: unpacked from a prepared weight, widened from 16 bits.</summary>
    public void ReadF32(float* destination)
    {
        if (PackedConvWeights is { } packed) packed.Unpack(destination);
        else Elements.Read(0, destination, checked((int)ElementCount));
    }

    /// <summary>The row-major buffer; a prepared weight has none.</summary>
    private nint Buffer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_buffer == 0)
                throw new InvalidOperationException($"tensor {this} is a convolution weight prepared for {Owner.Name} (packed): only convolutions and downloads read it");
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
        }
        if (_buffer != 0) _pool.Return(_buffer, _capacity);
        _buffer = 0;
    }
}
