using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>WanResample</c> / <c>QwenImageResample</c>, a frame at a time. Its 2D conv <c>resample.1</c> runs on
/// every frame; a temporal one also has a (3, 1, 1) <c>time_conv</c>, read only for video.
/// <list type="bullet">
/// <item>Down (ZeroPad2d (0, 1, 0, 1), a 3x3 stride-2 conv): the first frame passes; after it, time_conv runs
/// unpadded with stride 2 over the frames after the 2D conv, so every second frame makes one from itself and the two
/// before it, and the others make none.</item>
/// <item>Up (nearest 2x, a 3x3 conv): the first frame passes ("Rep"); every later one goes through time_conv, causal
/// over the frames after the first (zeros before them), and its output's halves of C channels become two frames.</item>
/// </list>
/// </summary>
internal sealed class QwenImageResample
{
    private readonly Conv2d _spatial;
    private readonly CausalConv3d? _timeConv;
    private readonly bool _up;

    private QwenImageResample(DeviceParameters p, string prefix, Conv2dSpec spec, bool temporal, bool frames, bool up)
    {
        _spatial = new Conv2d(p, prefix + ".resample.1", spec);
        if (temporal && frames) _timeConv = new CausalConv3d(p, prefix + ".time_conv", Conv2dSpec.Pointwise, frames: true);
        _up = up;
    }

    public static QwenImageResample Down(DeviceParameters p, string prefix, bool temporal, bool frames) =>
        new(p, prefix, Conv2dSpec.DownsampleAsymmetric, temporal, frames, up: false);

    public static QwenImageResample Up(DeviceParameters p, string prefix, bool temporal, bool frames) =>
        new(p, prefix, Conv2dSpec.UpsampleSame, temporal, frames, up: true);

    /// <summary>Consumes <paramref name="x"/>; the frames it makes.</summary>
    public IReadOnlyList<Tensor> Forward(IBackend ops, Tensor x, CausalFrames? state)
    {
        if (_timeConv is null || state is null) return [Spatial(ops, x)];
        return _up ? Up(ops, x, state, _timeConv) : Down(ops, x, state, _timeConv);
    }

    private Tensor Spatial(IBackend ops, Tensor x)
    {
        using (x) return _spatial.Forward(ops, x);
    }

    private IReadOnlyList<Tensor> Down(IBackend ops, Tensor x, CausalFrames state, CausalConv3d timeConv)
    {
        var y = Spatial(ops, x);
        int seen = state.Of(timeConv).Seen;
        if (seen == 0)
        {
            timeConv.Remember(ops, y, state);
            return [y];
        }
        if (seen % 2 == 1)
        {
            timeConv.Keep(y, state);
            return [];
        }
        return [timeConv.ForwardFullConsuming(ops, y, state)];
    }

    private IReadOnlyList<Tensor> Up(IBackend ops, Tensor x, CausalFrames state, CausalConv3d timeConv)
    {
        var history = state.Of(timeConv);
        if (history.Seen == 0)
        {
            history.Skip();
            return [Spatial(ops, x)];
        }
        int channels = x.Shape.C;
        var both = timeConv.ForwardConsuming(ops, x, state);
        Tensor first, second;
        using (both)
        {
            first = ops.SliceChannels(both, 0, channels);
            second = ops.SliceChannels(both, channels, channels);
        }
        var upFirst = Spatial(ops, first);
        try
        {
            return [upFirst, Spatial(ops, second)];
        }
        catch
        {
            upFirst.Dispose();
            throw;
        }
    }
}
