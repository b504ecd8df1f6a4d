using NativeVae.Core;
using NativeVae.Weights;
using NativeVae.Formats;
using NativeVae.Loading;
using static TorchSharp.torch;

namespace NativeVae.Oracle;

/// <summary>
/// Parameters as libtorch tensors, handed out only for a name AND the shape the oracle's own module code expects,
/// so the oracle cross-checks the declared parameter list instead of trusting it. After a full encode and
/// decode, <see cref="AssertAllUsed"/> proves the oracle read exactly the declared set: no parameter missing,
/// none left over.
/// </summary>
internal sealed class CheckedWeights : IDisposable
{
    private readonly IWeightSource _source;
    private readonly Dictionary<string, Tensor> _loaded = new(StringComparer.Ordinal);

    public CheckedWeights(IWeightSource source) => _source = source;

    public Tensor Get(string name, params int[] expectedShape)
    {
        if (_loaded.TryGetValue(name, out var cached)) return cached;
        if (!_source.TryGetShape(name, out var shape))
            throw new InvalidOperationException($"oracle: {_source.Origin} has no parameter '{name}' that the diffusers module reads");
        if (!shape.Dims.SequenceEqual(expectedShape))
            throw new InvalidOperationException(
                $"oracle: parameter '{name}' is {shape} in {_source.Origin}, the diffusers module expects [{string.Join(", ", expectedShape)}]");
        // Kept for the life of this object, outside any dispose scope of the forward pass that first reads it.
        var tensor = Torch.FromArray(_source.ReadFloat32(name), expectedShape.Select(d => (long)d).ToArray()).DetachFromDisposeScope();
        _loaded[name] = tensor;
        return tensor;
    }

    /// <summary>
    /// Fails loudly unless every declared parameter (of those <paramref name="among"/> selects, default all) was
    /// read by the forward passes run so far.
    /// </summary>
    public void AssertAllUsed(Func<string, bool>? among = null)
    {
        var unused = _source.Names.Where(n => (among?.Invoke(n) ?? true) && !_loaded.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        if (unused.Count > 0)
            throw new InvalidOperationException(
                $"oracle: {unused.Count} declared parameters were never read by the forward passes: {string.Join(", ", unused.Take(10))}");
    }

    public int Count => _loaded.Count;

    public void Dispose()
    {
        foreach (var tensor in _loaded.Values) tensor.Dispose();
        _loaded.Clear();
    }
}
