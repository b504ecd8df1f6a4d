using ILGPU;
using ILGPU.Runtime;
using NativeVae.Core;
using NativeVae.Kernels.Gpu;

namespace NativeVae.Backends.Ilgpu;

/// <summary>
/// A tensor in an ILGPU device buffer rented from the backend's pool. F32 tensors are NCHW as their shape says;
/// 16-bit tensors (always rank 4) are stored as the tensor-core kernels read them: NHWC with the channels padded by
/// zeros to <see cref="Conv2dTensorCoreGpu.ChannelAlignment"/>, so a weight [Cout, Cin, K, K] is already the packed
/// K-major layout the GEMM reads.
/// </summary>
internal sealed class IlgpuTensor : Tensor
{
    private readonly BufferPool<MemoryBuffer1D<byte, Stride1D.Dense>> _pool;
    private MemoryBuffer1D<byte, Stride1D.Dense>? _buffer;

    public IlgpuTensor(IlgpuBackend owner, BufferPool<MemoryBuffer1D<byte, Stride1D.Dense>> pool, TensorShape shape, DType dtype)
        : base(shape, dtype)
    {
        Owner = owner;
        _pool = pool;
        StoredBytes = StoredByteLength(shape, dtype);
        _buffer = pool.Rent(StoredBytes).Buffer;
    }

    public IlgpuBackend Owner { get; }

    internal override IBackend Backend => Owner;

    public override bool IsDisposed => _buffer is null;

    /// <summary>Bytes the stored layout takes: <see cref="Tensor.ByteLength"/>, plus the channel padding of a 16-bit tensor.</summary>
    public long StoredBytes { get; }

    /// <summary>Whether this tensor is 16-bit NHWC (bf16 or fp16).</summary>
    public bool IsHalf => DType != DType.F32;

    /// <summary>The bytes of the stored layout (exactly <see cref="StoredBytes"/> long).</summary>
    public ArrayView<byte> Bytes => Buffer.View.SubView(0, StoredBytes);

    /// <summary>The elements as fp32; the tensor must be F32.</summary>
    public ArrayView<float> F32
    {
        get
        {
            if (DType != DType.F32)
                throw new NotSupportedException($"tensor {this} is {DType}, the op needs F32 on {Owner.Name}");
            return Bytes.Cast<float>();
        }
    }

    /// <summary>A 16-bit tensor's stored elements, two per word (NHWC, channels padded).</summary>
    public ArrayView<uint> Words => HalfBytes.Cast<uint>();

    /// <summary>A 16-bit tensor's stored elements one by one.</summary>
    public ArrayView<ushort> Halves => HalfBytes.Cast<ushort>();

    /// <summary>A 16-bit tensor's layout as the 16-bit kernels take it.</summary>
    public HalfLayout Layout => new()
    {
        Batch = Shape.N,
        Pixels = checked(Shape.H * Shape.W),
        Channels = Shape.C,
        ChannelStride = NhwcPacking.PaddedChannels(Shape.C),
    };

    private ArrayView<byte> HalfBytes => IsHalf
        ? Bytes
        : throw new NotSupportedException($"tensor {this} is F32, the op needs 16-bit storage on {Owner.Name}");

    private MemoryBuffer1D<byte, Stride1D.Dense> Buffer =>
        _buffer ?? throw new ObjectDisposedException(nameof(IlgpuTensor), $"tensor {Shape} was disposed");

    /// <summary>The stored size of a tensor: 16-bit tensors are rank 4, NHWC with padded channels.</summary>
    public static long StoredByteLength(TensorShape shape, DType dtype)
    {
        if (dtype == DType.F32) return checked(shape.ElementCount * sizeof(float));
        if (shape.Rank != 4)
            throw new NotSupportedException($"a {dtype.ShortName()} tensor on ILGPU is 4-D NHWC; {shape} is not");
        return checked((long)shape.N * shape.H * shape.W * NhwcPacking.PaddedChannels(shape.C) * dtype.ByteSize());
    }

    public override void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null) _pool.Return(buffer, buffer.Length);
    }
}
