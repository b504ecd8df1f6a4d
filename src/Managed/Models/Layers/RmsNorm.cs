using NativeVae.Core;

namespace NativeVae.Models.Layers;

/// <summary>The Wan / Qwen-Image channel RMS norm bound to <c>{prefix}.gamma</c>, optionally followed by SiLU.</summary>
internal sealed class RmsNorm(DeviceParameters parameters, string prefix)
{
    private readonly Tensor _gamma = parameters[prefix + ".gamma"];

    public Tensor Forward(IBackend ops, Tensor x, bool silu) => ops.RmsNorm(x, _gamma, silu);
}
