namespace NativeVae;

/// <summary>
/// A tensor in host memory: a shape and its row-major elements. Latents and float images are
/// <c>HostTensor&lt;float&gt;</c> <c>[N, C, H, W]</c>; postprocessed images are <c>HostTensor&lt;byte&gt;</c> <c>[N, H, W, 3]</c>.
/// </summary>
public sealed class HostTensor<T> where T : unmanaged
{
    public HostTensor(TensorShape shape, T[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.LongLength != shape.ElementCount)
            throw new ArgumentException($"tensor data has {data.LongLength} elements, shape {shape} needs {shape.ElementCount}", nameof(data));
        Shape = shape;
        Data = data;
    }

    /// <summary>A zero-filled tensor.</summary>
    public HostTensor(TensorShape shape) : this(shape, new T[shape.ElementCount]) { }

    public TensorShape Shape { get; }

    /// <summary>The elements, row-major; writable.</summary>
    public T[] Data { get; }

    public override string ToString() => $"{typeof(T).Name}{Shape}";
}
