using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>A convolution (or a Linear over channels, as 1x1) bound to its parameters <c>{prefix}.weight|bias</c>.</summary>
internal sealed class Conv2d
{
    private readonly Tensor _weight;
    private readonly Tensor? _bias;
    private readonly Conv2dSpec _spec;

    public Conv2d(DeviceParameters parameters, string prefix, Conv2dSpec spec, bool bias = true)
    {
        _weight = parameters.ConvWeight(prefix + ".weight", spec);
        _bias = bias ? parameters[prefix + ".bias"] : null;
        _spec = spec;
    }

    /// <summary><c>conv(x) + bias (+ residual)</c>.</summary>
    public Tensor Forward(IBackend ops, Tensor x, Tensor? residual = null) => ops.Conv2d(x, _weight, _bias, _spec, residual);

    /// <summary><c>conv(silu?(norm(x))) + bias (+ residual)</c>, the norm fused into the convolution where the backend can.</summary>
    public Tensor Forward(IBackend ops, Tensor x, GroupNorm norm, bool silu, Tensor? residual = null) =>
        ops.NormConv2d(x, norm.Spec(silu), _weight, _bias, _spec, residual);
}
