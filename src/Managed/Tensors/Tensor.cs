using NativeVae.Backends;

namespace NativeVae.Tensors;

/// <summary>
/// A tensor living on a backend's device. Disposing it returns its storage to the backend's pool.
/// Tensors are created by a backend (<see cref="IBackend.Allocate"/>, <see cref="IBackend.Upload"/> or an op)
/// and may only be passed to ops of the same backend.
/// </summary>
internal abstract class Tensor : IDisposable
{
    protected Tensor(TensorShape shape, DType dtype)
    {
        Shape = shape;
        DType = dtype;
    }

    public TensorShape Shape { get; }

    public DType DType { get; }

    public long ElementCount => Shape.ElementCount;

    public long ByteLength => checked(Shape.ElementCount * DType.ByteSize());

    public abstract bool IsDisposed { get; }

    public abstract void Dispose();

    public override string ToString() => $"{DType}{Shape}";
}
