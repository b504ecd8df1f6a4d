using NativeVae.Core;

namespace NativeVae.Weights;

/// <summary>Parameters held in host memory.</summary>
internal sealed class InMemoryWeights : IWeightSource
{
    private readonly Dictionary<string, (TensorShape Shape, float[] Values)> _tensors = new(StringComparer.Ordinal);

    public InMemoryWeights(string origin) => Origin = origin;

    public string Origin { get; }

    public IReadOnlyCollection<string> Names => _tensors.Keys;

    public void Add(string name, TensorShape shape, float[] values)
    {
        if (values.Length != shape.ElementCount)
            throw new ArgumentException($"{Origin}: parameter '{name}' has {values.Length} values for shape {shape}");
        _tensors[name] = (shape, values);
    }

    public bool TryGetShape(string name, out TensorShape shape)
    {
        bool found = _tensors.TryGetValue(name, out var entry);
        shape = entry.Shape;
        return found;
    }

    public float[] ReadFloat32(string name) =>
        _tensors.TryGetValue(name, out var entry)
            ? entry.Values
            : throw new KeyNotFoundException($"{Origin}: no parameter named '{name}'");

    /// <summary>Deterministic random parameters (see <see cref="SeededWeights"/>).</summary>
    public static InMemoryWeights Seeded(ulong seed, IReadOnlyList<(string Name, TensorShape Shape)> parameters)
    {
        var weights = new InMemoryWeights($"seeded(seed={seed})");
        var values = SeededWeights.Generate(seed, parameters);
        foreach (var (name, shape) in parameters) weights.Add(name, shape, values[name]);
        return weights;
    }
}
