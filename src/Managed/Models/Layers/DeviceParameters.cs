using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>
/// A model's parameters uploaded to a backend once. The model checks them against what it declares
/// (<see cref="ParameterCheck"/>) before anything is uploaded. Disposing frees them.
/// </summary>
internal sealed class DeviceParameters : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Conv2dSpec> _convSpecs = new(StringComparer.Ordinal);
    private readonly IBackend _backend;

    /// <param name="source">weights already checked against <paramref name="declared"/> (<see cref="ParameterCheck"/>).</param>
    public DeviceParameters(IBackend backend, IWeightSource source, IReadOnlyList<(string Name, TensorShape Shape)> declared)
    {
        _backend = backend;
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

    /// <summary>
    /// The convolution weight <paramref name="name"/>, prepared by the backend for convolutions of
    /// <paramref name="spec"/> on its first request (<see cref="IBackend.PrepareConvWeight"/>), which replaces the
    /// uploaded tensor. A weight serves one convolution geometry.
    /// </summary>
    public Tensor ConvWeight(string name, Conv2dSpec spec)
    {
        if (_convSpecs.TryGetValue(name, out var preparedFor))
            return preparedFor == spec ? this[name] : throw new InvalidOperationException(
                $"parameter '{name}' was prepared for convolutions of {preparedFor}, and is asked for {spec}");
        var prepared = _backend.PrepareConvWeight(this[name], spec);
        _tensors[name] = prepared;
        _convSpecs[name] = spec;
        return prepared;
    }

    public long TotalBytes => _tensors.Values.Sum(t => t.ByteLength);

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}
