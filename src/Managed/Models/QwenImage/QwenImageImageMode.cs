using NativeVae.Core;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// AutoencoderKLQwenImage on one frame, as the 2D network it then is. Each causal conv pads two zero frames in front
/// of its input, so on one frame only the last temporal tap of a 3x3x3 kernel meets data: the conv is exactly a 2D
/// 3x3 conv over <c>weight[:, :, -1]</c> (a 1x1x1 one over <c>weight[:, :, 0]</c>). The temporal resamples keep
/// their first chunk in a cache and skip their time_conv, and norms broadcast over [C, 1, 1(, 1)] are per channel.
/// This view of the weights presents that network's parameters: 4-D conv weights, [C] gammas, no time_conv.
/// </summary>
internal sealed class QwenImageImageMode : IWeightSource
{
    private const int ConvRank3d = 5;
    private const string TimeConv = ".time_conv.";
    private const string GammaSuffix = ".gamma";

    private readonly IWeightSource _source;
    private readonly Dictionary<string, (TensorShape Stored, TensorShape Image)> _shapes = new(StringComparer.Ordinal);

    /// <param name="declared">the 3D model's parameters (<see cref="QwenImageParameters"/>), checked against the source.</param>
    public QwenImageImageMode(IWeightSource source, IReadOnlyList<(string Name, TensorShape Shape)> declared)
    {
        _source = source;
        foreach (var (name, shape) in declared)
        {
            if (name.Contains(TimeConv, StringComparison.Ordinal)) continue;
            _shapes[name] = (shape, ImageShape(name, shape));
        }
    }

    /// <summary>The image network's parameters, in the 3D list's order.</summary>
    public IReadOnlyList<(string Name, TensorShape Shape)> Declared => _shapes.Select(kv => (kv.Key, kv.Value.Image)).ToArray();

    public string Origin => _source.Origin;

    public IReadOnlyCollection<string> Names => _shapes.Keys;

    public bool TryGetShape(string name, out TensorShape shape)
    {
        bool found = _shapes.TryGetValue(name, out var s);
        shape = s.Image;
        return found;
    }

    public string Describe(string name) => _source.Describe(name);

    public float[] ReadFloat32(string name)
    {
        var (stored, image) = _shapes.TryGetValue(name, out var s) ? s : throw new KeyNotFoundException($"{Origin}: no parameter '{name}'");
        var values = _source.ReadFloat32(name);
        return stored.Rank == ConvRank3d ? LastTemporalTap(values, stored) : values;
    }

    private static TensorShape ImageShape(string name, TensorShape shape) =>
        shape.Rank == ConvRank3d ? new TensorShape(shape[0], shape[1], shape[3], shape[4])
        : name.EndsWith(GammaSuffix, StringComparison.Ordinal) ? new TensorShape(shape[0])
        : shape;

    /// <summary><c>weight[:, :, -1]</c> of an <c>[out, in, t, h, w]</c> weight.</summary>
    private static float[] LastTemporalTap(float[] weight, TensorShape shape)
    {
        int pairs = shape[0] * shape[1], taps = shape[2], plane = shape[3] * shape[4];
        var result = new float[(long)pairs * plane];
        for (int pair = 0; pair < pairs; pair++)
            Array.Copy(weight, ((long)pair * taps + taps - 1) * plane, result, (long)pair * plane, plane);
        return result;
    }
}
