using ILGPU;
using ILGPU.Runtime;
using NativeVae.Core;

namespace NativeVae.Backends.Ilgpu;

/// <summary>A tensor in an ILGPU device buffer rented from the backend's pool.</summary>
internal sealed class IlgpuTensor : Tensor
{
    private readonly BufferPool<MemoryBuffer1D<byte, Stride1D.Dense>> _pool;
    private MemoryBuffer1D<byte, Stride1D.Dense>? _buffer;

    public IlgpuTensor(IlgpuBackend owner, BufferPool<MemoryBuffer1D<byte, Stride1D.Dense>> pool, TensorShape shape, DType dtype)
        : base(shape, dtype)
    {
        Owner = owner;
        _pool = pool;
        _buffer = pool.Rent(ByteLength).Buffer;
    }

    public IlgpuBackend Owner { get; }

    internal override IBackend Backend => Owner;

    public override bool IsDisposed => _buffer is null;

    /// <summary>The raw bytes of this tensor (exactly <see cref="Tensor.ByteLength"/> long).</summary>
    public ArrayView<byte> Bytes => Buffer.View.SubView(0, ByteLength);

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

    private MemoryBuffer1D<byte, Stride1D.Dense> Buffer =>
        _buffer ?? throw new ObjectDisposedException(nameof(IlgpuTensor), $"tensor {Shape} was disposed");

    public override void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null) _pool.Return(buffer, buffer.Length);
    }
}
