using NativeVae.Core;

namespace NativeVae.Tiling;

/// <summary>
/// Host copies of small device parameters (a GroupNorm's gamma and beta), downloaded once per tensor: the tiled
/// executor folds them with merged statistics on the host.
/// </summary>
internal sealed class HostParameters(IBackend device)
{
    private readonly Dictionary<Tensor, float[]> _copies = new(ReferenceEqualityComparer.Instance);

    public float[] Of(Tensor t)
    {
        if (!_copies.TryGetValue(t, out var values))
        {
            values = new float[t.ElementCount];
            device.Download(t, values);
            _copies[t] = values;
        }
        return values;
    }

    public void Clear() => _copies.Clear();
}
