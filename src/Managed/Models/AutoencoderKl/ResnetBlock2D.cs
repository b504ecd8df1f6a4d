using NativeVae.Models.Layers;
using NativeVae.Core;

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

    /// <summary>
    /// <c>conv2(silu(norm2(conv1(silu(norm1(x)))))) + shortcut(x)</c>. With <paramref name="ownsInput"/> the block
    /// disposes <paramref name="x"/> (also on failure) as soon as it is no longer needed: at 512x512 one
    /// activation is 128-256 MB, and the input is the largest of them where the block changes channels.
    /// </summary>
    public Tensor Forward(IBackend ops, Tensor x, bool ownsInput = false)
    {
        Tensor? h = null, shortcut = null;
        try
        {
            h = _conv1.Forward(ops, x, _norm1, silu: true);               // [N, Cout, H, W]
            if (_convShortcut is not null)
            {
                shortcut = _convShortcut.Forward(ops, x);                  // [N, Cout, H, W]
                if (ownsInput) x.Dispose();
            }
            return _conv2.Forward(ops, h, _norm2, silu: true, residual: shortcut ?? x); // conv2(h) + shortcut(x)
        }
        finally
        {
            h?.Dispose();
            shortcut?.Dispose();
            if (ownsInput) x.Dispose();   // a second dispose is a no-op
        }
    }
}
