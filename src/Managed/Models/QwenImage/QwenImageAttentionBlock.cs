using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>QwenImageAttentionBlock</c>, per frame: one head over the pixels, an RMS norm, a fused 1x1
/// <c>to_qkv</c> (C to 3C, q, k and v its consecutive thirds), scale 1/sqrt(C), a 1x1 <c>proj</c>, and the input
/// (before the norm) added back.
/// </summary>
internal sealed class QwenImageAttentionBlock
{
    private readonly RmsNorm _norm;
    private readonly Conv2d _toQkv;
    private readonly Conv2d _proj;
    private readonly int _channels;
    private readonly float _scale;

    public QwenImageAttentionBlock(DeviceParameters p, string prefix, int channels)
    {
        _norm = new RmsNorm(p, prefix + ".norm");
        _toQkv = new Conv2d(p, prefix + ".to_qkv", Conv2dSpec.Pointwise);
        _proj = new Conv2d(p, prefix + ".proj", Conv2dSpec.Pointwise);
        _channels = channels;
        _scale = 1f / MathF.Sqrt(channels);
    }

    public Tensor Forward(IBackend ops, Tensor x)
    {
        Tensor qkv;
        using (var normed = _norm.Forward(ops, x, silu: false))
            qkv = _toQkv.Forward(ops, normed);                                  // [N, 3C, H, W]
        Tensor attended;
        using (qkv)
        using (var q = ops.SliceChannels(qkv, 0, _channels))
        using (var k = ops.SliceChannels(qkv, _channels, _channels))
        using (var v = ops.SliceChannels(qkv, 2 * _channels, _channels))
            attended = ops.Attention(q, k, v, _scale);                          // [N, C, H*W] channel-major tokens
        using (attended)
            return _proj.Forward(ops, attended, residual: x);
    }
}
