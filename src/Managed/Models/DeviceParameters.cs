using NativeVae.Backends;
using NativeVae.Tensors;
using NativeVae.Weights;

namespace NativeVae.Models;

/// <summary>
/// A model's parameters uploaded to a backend, each checked against the model's declared name and shape
/// before upload. Disposing returns every buffer.
/// </summary>
internal sealed class DeviceParameters : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    private DeviceParameters() { }

    /// <exception cref="InvalidDataException">a declared parameter is missing from the source or has another shape.</exception>
    public static DeviceParameters Upload(IBackend backend, IWeightSource source, IReadOnlyList<(string Name, TensorShape Shape)> declared)
    {
        var result = new DeviceParameters();
        try
        {
            foreach (var (name, shape) in declared)
            {
                if (!source.TryGetShape(name, out var actual))
                    throw new InvalidDataException($"{source.Origin}: parameter '{name}' {shape} is missing");
                if (actual != shape)
                    throw new InvalidDataException($"{source.Origin}: parameter '{name}' has shape {actual}, the model expects {shape}");
                result._tensors[name] = backend.Upload(source.ReadFloat32(name), shape);
            }
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    public Tensor this[string name] =>
        _tensors.TryGetValue(name, out var t) ? t : throw new KeyNotFoundException($"parameter '{name}' was not uploaded");

    public long ByteLength => _tensors.Values.Sum(t => t.ByteLength);

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
