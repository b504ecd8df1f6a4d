using NativeVae.Kernels.Cpu;
using NativeVae.Tensors;

namespace NativeVae.Backends.Cpu;

/// <summary>A tensor in 64-byte aligned native memory rented from the CPU backend's pool.</summary>
internal sealed unsafe class CpuTensor : Tensor
{
    private readonly NativeBufferPool _pool;
    private nint _buffer;

    public CpuTensor(CpuBackend owner, NativeBufferPool pool, TensorShape shape, DType dtype)
        : base(shape, dtype)
    {
        Owner = owner;
        _pool = pool;
        _buffer = pool.Rent(ByteLength);
    }

    public CpuBackend Owner { get; }

    public override bool IsDisposed => _buffer == 0;

    /// <summary>The elements as fp32; the tensor must be F32.</summary>
    public float* F32
    {
        get
        {
            if (DType != DType.F32)
                throw new NotSupportedException($"tensor {this} is {DType}, the op needs F32 on {Owner.Name}");
            ObjectDisposedException.ThrowIf(_buffer == 0, this);
            return (float*)_buffer;
        }
    }

    /// <summary>The raw bytes.</summary>
    public byte* Bytes
    {
        get
        {
            ObjectDisposedException.ThrowIf(_buffer == 0, this);
            return (byte*)_buffer;
        }
    }

    /// <summary>
    /// This tensor's values packed for the convolution micro-kernel, made on its first use as a conv weight and
    /// kept with it. Weights are uploaded once and never written afterwards (ops only write fresh outputs), so
    /// the packing stays valid for the tensor's life.
    /// </summary>
    public Conv2dPackedWeights? PackedConvWeights { get; set; }

    public override void Dispose()
    {
        nint buffer = Interlocked.Exchange(ref _buffer, 0);
        if (buffer == 0) return;
        if (PackedConvWeights is { } packed)
        {
            Owner.ReleasePackedWeights(packed.Bytes);
            packed.Dispose();
            PackedConvWeights = null;
        }
        _pool.Return(buffer, ByteLength);
    }
}
