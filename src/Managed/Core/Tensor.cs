
namespace NativeVae.Core;

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

    /// <summary>
    /// The backend's check on every tensor an op receives: it is a live <typeparamref name="T"/> created by
    /// <paramref name="owner"/>. The message names the argument.
    /// </summary>
    internal static T Require<T>(Tensor tensor, IBackend owner, string name) where T : Tensor
    {
        ArgumentNullException.ThrowIfNull(tensor, name);
        if (tensor is not T t || !ReferenceEquals(t.Backend, owner))
            throw new ArgumentException($"tensor '{name}' {tensor} belongs to another backend than {owner.Name}", name);
        if (t.IsDisposed)
            throw new ObjectDisposedException(name, $"tensor '{name}' {tensor.Shape} was disposed");
        return t;
    }

    /// <summary>The backend that created this tensor (null for host-only tensors).</summary>
    internal virtual IBackend? Backend => null;
}
