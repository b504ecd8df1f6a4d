using NativeVae.Models.Layers;
using NativeVae.Core;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// diffusers: <c>Attention</c> in the VAE mid-block (single head of dim C, group norm first, residual connection,
/// rescale factor 1). The q/k/v/out Linears act on channels, so they run as 1x1 convolutions on [N, C, H, W].
/// </summary>
internal sealed class AttentionBlock
{
    private readonly GroupNorm _groupNorm;
    private readonly Conv2d _toQ;
    private readonly Conv2d _toK;
    private readonly Conv2d _toV;
    private readonly Conv2d _toOut;
    private readonly float _scale;

    public AttentionBlock(DeviceParameters p, string prefix, int channels, AutoencoderKlConfig config)
    {
        _groupNorm = new GroupNorm(p, prefix + ".group_norm", config.NormNumGroups, config.NormEps);
        _toQ = new Conv2d(p, prefix + ".to_q", Conv2dSpec.Pointwise);
        _toK = new Conv2d(p, prefix + ".to_k", Conv2dSpec.Pointwise);
        _toV = new Conv2d(p, prefix + ".to_v", Conv2dSpec.Pointwise);
        _toOut = new Conv2d(p, prefix + ".to_out.0", Conv2dSpec.Pointwise);
        _scale = 1f / MathF.Sqrt(channels);
    }

    public Tensor Forward(IBackend ops, Tensor x)
    {
        Tensor q, k, v;
        using (var normed = _groupNorm.Forward(ops, x, silu: false))   // [N, C, H, W]
        {
            q = _toQ.Forward(ops, normed);                              // [N, C, H*W] channel-major tokens
            k = _toK.Forward(ops, normed);
            v = _toV.Forward(ops, normed);
        }
        Tensor attended;
        using (q)
        using (k)
        using (v)
            attended = ops.Attention(q, k, v, _scale);                  // [N, C, H*W]
        using (attended)
            return _toOut.Forward(ops, attended, residual: x);          // out(attn) + x
    }
}
