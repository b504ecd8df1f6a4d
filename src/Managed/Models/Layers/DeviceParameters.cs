using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>
/// A model's parameters uploaded to a backend once. The model checks them against what it declares
/// (<see cref="ParameterCheck"/>) before anything is uploaded. Disposing frees them.
/// </summary>
internal sealed class DeviceParameters : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);

    /// <param name="source">weights already checked against <paramref name="declared"/> (<see cref="ParameterCheck"/>).</param>
    public DeviceParameters(IBackend backend, IWeightSource source, IReadOnlyList<(string Name, TensorShape Shape)> declared)
    {
        try
        {
            foreach (var (name, shape) in declared)
                _tensors[name] = backend.Upload(source.ReadFloat32(name), UploadShape(shape), StorageOf(backend, shape));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Weights in the backend's storage; per-channel vectors (biases, norm affines), which kernels read as fp32, in F32.</summary>
    private static DType StorageOf(IBackend backend, TensorShape shape) => shape.Rank >= 2 ? backend.StorageDType : DType.F32;

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
