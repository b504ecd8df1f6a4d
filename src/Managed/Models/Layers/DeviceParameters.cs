using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>
/// A model's parameters uploaded to a backend once, checked against what the model declares (name and shape)
/// before anything is uploaded. Disposing frees them.
/// </summary>
internal sealed class DeviceParameters : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    public DeviceParameters(IBackend backend, IWeightSource source, IReadOnlyList<(string Name, TensorShape Shape)> declared)
    {
        Validate(source, declared);
        try
        {
            foreach (var (name, shape) in declared)
                _tensors[name] = backend.Upload(source.ReadFloat32(name), UploadShape(shape));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Checks that <paramref name="source"/> has every declared parameter with its declared shape.</summary>
    /// <exception cref="InvalidDataException">one is missing or has another shape; the message names it.</exception>
    public static void Validate(IWeightSource source, IReadOnlyList<(string Name, TensorShape Shape)> declared)
    {
        foreach (var (name, shape) in declared)
        {
            if (!source.TryGetShape(name, out var actual))
                throw new InvalidDataException($"{source.Origin}: missing parameter '{name}' (expected shape {shape})");
            if (actual != shape)
                throw new InvalidDataException($"{source.Origin}: parameter '{name}' has shape {actual}, the model expects {shape}");
        }
    }

    /// <summary>Linear weights [Cout, Cin] are stored as 1x1 conv weights [Cout, Cin, 1, 1]: the same bytes.</summary>
    private static TensorShape UploadShape(TensorShape shape) =>
        shape.Rank == 2 ? new TensorShape(shape[0], shape[1], 1, 1) : shape;

    public Tensor this[string name] =>
        _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"model has no parameter '{name}'");

    public long TotalBytes => _tensors.Values.Sum(t => t.ByteLength);

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
