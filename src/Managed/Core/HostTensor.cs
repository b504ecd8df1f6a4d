namespace NativeVae;

/// <summary>
/// A tensor in host memory: a shape and its row-major elements. Latents and float images are
/// <c>HostTensor&lt;float&gt;</c> <c>[N, C, H, W]</c>; postprocessed images are <c>HostTensor&lt;byte&gt;</c> <c>[N, H, W, 3]</c>.
/// </summary>
public sealed class HostTensor<T> where T : unmanaged
{
    /// <summary>A tensor over <paramref name="data"/> (not copied), row-major in <paramref name="shape"/>.</summary>
    /// <exception cref="ArgumentException">the data's length is not the shape's element count.</exception>
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

    /// <summary>The dimensions, e.g. <c>[N, C, H, W]</c>.</summary>
    public TensorShape Shape { get; }

    /// <summary>The elements, row-major; writable.</summary>
    public T[] Data { get; }

    /// <summary>The element type and shape, e.g. <c>Single[1, 4, 64, 64]</c>.</summary>
    public override string ToString() => $"{typeof(T).Name}{Shape}";
}
