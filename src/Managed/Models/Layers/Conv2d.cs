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

    /// <summary><c>conv(x) + bias (+ residual)</c>, then ReLU when <paramref name="relu"/>: fused where the backend fuses it.</summary>
    public Tensor Forward(IBackend ops, Tensor x, Tensor? residual = null, bool relu = false)
    {
        bool fused = relu && ops.Capabilities.FusesConvRelu;
        var y = ops.Conv2d(x, _weight, _bias, _spec with { Relu = fused }, residual);
        return relu && !fused ? Relu(ops, y) : y;
    }

    /// <summary>
    /// <c>relu(conv(x) + bias (+ residual))</c>, disposing <paramref name="x"/> (also when it throws): where the backend
    /// runs ReLU as an op of its own, x is freed before it, so no more tensors are live than in two separate steps.
    /// </summary>
    public Tensor ForwardRelu(IBackend ops, Tensor x, Tensor? residual = null)
    {
        bool fused = ops.Capabilities.FusesConvRelu;
        Tensor y;
        using (x) y = ops.Conv2d(x, _weight, _bias, _spec with { Relu = fused }, residual);
        return fused ? y : Relu(ops, y);
    }

    /// <summary>ReLU as an op of its own, disposing <paramref name="y"/>.</summary>
    private static Tensor Relu(IBackend ops, Tensor y)
    {
        using (y) return ops.Unary(UnaryOp.Relu, y);
    }

    /// <summary><c>conv(silu?(norm(x))) + bias (+ residual)</c>, the norm fused into the convolution where the backend can.</summary>
    public Tensor Forward(IBackend ops, Tensor x, GroupNorm norm, bool silu, Tensor? residual = null) =>
        ops.NormConv2d(x, norm.Spec(silu), _weight, _bias, _spec, residual);
}
