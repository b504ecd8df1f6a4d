using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>GroupNorm bound to <c>{prefix}.weight|bias</c>, optionally followed by SiLU.</summary>
internal sealed class GroupNorm
{
    private readonly Tensor _gamma;
    private readonly Tensor _beta;
    private readonly int _groups;
    private readonly float _eps;

    public GroupNorm(DeviceParameters parameters, string prefix, int groups, float eps)
    {
        _gamma = parameters[prefix + ".weight"];
        _beta = parameters[prefix + ".bias"];
        _groups = groups;
        _eps = eps;
    }

    public Tensor Forward(IBackend ops, Tensor x, bool silu) => ops.GroupNorm(x, _gamma, _beta, _groups, _eps, silu);

    /// <summary>This norm as a convolution's input step (<see cref="IBackend.NormConv2d"/>).</summary>
    public GroupNormSpec Spec(bool silu) => new(_gamma, _beta, _groups, _eps, silu);
}
