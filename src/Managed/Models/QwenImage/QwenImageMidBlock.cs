using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>diffusers: <c>QwenImageMidBlock</c> with one layer: resnet, attention (per frame), resnet.</summary>
internal sealed class QwenImageMidBlock(DeviceParameters p, string prefix, int dim, bool frames)
{
    private readonly QwenImageResidualBlock _first = new(p, prefix + ".resnets.0", dim, dim, frames);
    private readonly QwenImageAttentionBlock _attention = new(p, prefix + ".attentions.0", dim);
    private readonly QwenImageResidualBlock _second = new(p, prefix + ".resnets.1", dim, dim, frames);

    public Tensor Forward(IBackend ops, Tensor x, CausalFrames? state, bool ownsInput)
    {
        var h = _first.Forward(ops, x, state, ownsInput);
        Tensor attended;
        using (h) attended = _attention.Forward(ops, h);
        return _second.Forward(ops, attended, state, ownsInput: true);
    }
}
