using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// AutoencoderKLWan / AutoencoderKLQwenImage's weights as the 2D convs that run them
/// (<see cref="CausalConv3d"/>). An <c>[out, in, t, h, w]</c> weight is presented per temporal tap as
/// <c>[out, in, h, w]</c>: <c>{prefix}.weight</c> is <c>weight[:, :, -1]</c>, the tap that meets the current frame,
/// and with <c>frames</c> <c>{prefix}.tap0|tap1.weight</c> are <c>weight[:, :, 0|1]</c>. Norm gammas broadcast over
/// [C, 1, 1(, 1)] are per channel, [C].
/// <para>
/// Without <c>frames</c> (an image: Qwen-Image) only the current tap is presented, and the temporal resamples'
/// <c>time_conv</c>s not at all: each causal conv pads two zero frames in front, so on one frame only its last tap
/// meets data, and a resample keeps its first chunk and skips its time_conv. The model is then exactly a 2D network
/// holding a third of the 3x3x3 convs' bytes.
/// </para>
/// </summary>
internal sealed class WanWeightView : IWeightSource
{
    private const int ConvRank3d = 5;
    private const int TemporalAxis = 2;
    private const string TimeConv = ".time_conv.";
    private const string WeightSuffix = ".weight";
    private const string GammaSuffix = ".gamma";

    private readonly IWeightSource _source;
    private readonly Dictionary<string, (string Stored, TensorShape StoredShape, int Tap, TensorShape Shape)> _views = new(StringComparer.Ordinal);

    /// <param name="declared">the 3D model's parameters (<see cref="QwenImageParameters"/>), checked against the source.</param>
    /// <param name="frames">present every temporal tap and the time_convs, for video.</param>
    public WanWeightView(IWeightSource source, IReadOnlyList<(string Name, TensorShape Shape)> declared, bool frames = false)
    {
        _source = source;
        foreach (var (name, shape) in declared)
        {
            if (!frames && name.Contains(TimeConv, StringComparison.Ordinal)) continue;
            if (shape.Rank != ConvRank3d)
            {
                var perChannel = name.EndsWith(GammaSuffix, StringComparison.Ordinal) ? new TensorShape(shape[0]) : shape;
                _views[name] = (name, shape, -1, perChannel);
                continue;
            }
            var tapShape = new TensorShape(shape[0], shape[1], shape[3], shape[4]);
            int taps = shape[TemporalAxis];
            _views[name] = (name, shape, taps - 1, tapShape);
            if (!frames || taps == 1) continue;
            string prefix = name[..^WeightSuffix.Length];
            _views[prefix + WanTaps.BeforePrevious + WeightSuffix] = (name, shape, 0, tapShape);
            _views[prefix + WanTaps.Previous + WeightSuffix] = (name, shape, 1, tapShape);
        }
    }

    /// <summary>The 2D network's parameters, in the 3D list's order.</summary>
    public IReadOnlyList<(string Name, TensorShape Shape)> Declared => _views.Select(kv => (kv.Key, kv.Value.Shape)).ToArray();

    public string Origin => _source.Origin;

    public IReadOnlyCollection<string> Names => _views.Keys;

    public bool TryGetShape(string name, out TensorShape shape)
    {
        bool found = _views.TryGetValue(name, out var v);
        shape = v.Shape;
        return found;
    }

    public string Describe(string name) => _source.Describe(_views.TryGetValue(name, out var v) ? v.Stored : name);

    public float[] ReadFloat32(string name)
    {
        var view = _views.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"{Origin}: no parameter '{name}'");
        var values = _source.ReadFloat32(view.Stored);
        return view.Tap < 0 ? values : TemporalTap(values, view.StoredShape, view.Tap);
    }

    /// <summary><c>weight[:, :, tap]</c> of an <c>[out, in, t, h, w]</c> weight.</summary>
    private static float[] TemporalTap(float[] weight, TensorShape shape, int tap)
    {
        int pairs = shape[0] * shape[1], taps = shape[TemporalAxis], plane = shape[3] * shape[4];
        var result = new float[(long)pairs * plane];
        for (int pair = 0; pair < pairs; pair++)
            Array.Copy(weight, ((long)pair * taps + tap) * plane, result, (long)pair * plane, plane);
        return result;
    }
}
