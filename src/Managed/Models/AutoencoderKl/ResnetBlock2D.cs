using NativeVae.Backends;
using NativeVae.Models.Layers;
using NativeVae.Tensors;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>diffusers: <c>ResnetBlock2D</c> as the VAE uses it (no time embedding, output scale 1, no dropout).</summary>
internal sealed class ResnetBlock2D
{
    private readonly GroupNorm _norm1;
    private readonly Conv2d _conv1;
    private readonly GroupNorm _norm2;
    private readonly Conv2d _conv2;
    private readonly Conv2d? _convShortcut;

    public ResnetBlock2D(DeviceParameters p, string prefix, int inChannels, int outChannels, AutoencoderKlConfig config)
    {
        _norm1 = new GroupNorm(p, prefix + ".norm1", config.NormNumGroups, config.NormEps);
        _conv1 = new Conv2d(p, prefix + ".conv1", Conv2dSpec.Same);
        _norm2 = new GroupNorm(p, prefix + ".norm2", config.NormNumGroups, config.NormEps);
        _conv2 = new Conv2d(p, prefix + ".conv2", Conv2dSpec.Same);
        if (inChannels != outChannels) _convShortcut = new Conv2d(p, prefix + ".conv_shortcut", Conv2dSpec.Pointwise);
    }

    public Tensor Forward(IBackend ops, Tensor x)
    {
        // Each activation is released as soon as the next exists: at 512x512 one is 128-256 MB.
        Tensor h;
        using (var normed = _norm1.Forward(ops, x, silu: true))  // [N, Cin, H, W]
            h = _conv1.Forward(ops, normed);                       // [N, Cout, H, W]
        Tensor normed2;
        using (h)
            normed2 = _norm2.Forward(ops, h, silu: true);          // [N, Cout, H, W]
        using (normed2)
        {
            if (_convShortcut is null) return _conv2.Forward(ops, normed2, residual: x);
            using var shortcut = _convShortcut.Forward(ops, x);    // [N, Cout, H, W]
            return _conv2.Forward(ops, normed2, residual: shortcut); // conv2(h) + shortcut(x)
        }
    }
}
