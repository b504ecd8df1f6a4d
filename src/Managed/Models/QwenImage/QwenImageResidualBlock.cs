using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>QwenImageResidualBlock</c> / <c>WanResidualBlock</c>: <c>conv2(silu(rms2(conv1(silu(rms1(x)))))) +
/// shortcut(x)</c>, its two convs causal in time: each takes its input after norm and SiLU, and keeps it as history.
/// </summary>
internal sealed class QwenImageResidualBlock
{
    private readonly RmsNorm _norm1;
    private readonly CausalConv3d _conv1;
    private readonly RmsNorm _norm2;
    private readonly CausalConv3d _conv2;
    private readonly Conv2d? _shortcut;

    public QwenImageResidualBlock(DeviceParameters p, string prefix, int inDim, int outDim, bool frames)
    {
        _norm1 = new RmsNorm(p, prefix + ".norm1");
        _conv1 = new CausalConv3d(p, prefix + ".conv1", Conv2dSpec.Same, frames);
        _norm2 = new RmsNorm(p, prefix + ".norm2");
        _conv2 = new CausalConv3d(p, prefix + ".conv2", Conv2dSpec.Same, frames);
        if (inDim != outDim) _shortcut = new Conv2d(p, prefix + ".conv_shortcut", Conv2dSpec.Pointwise);
    }

    /// <summary>With <paramref name="ownsInput"/> the block disposes <paramref name="x"/> (also on failure) once it is no longer needed.</summary>
    public Tensor Forward(IBackend ops, Tensor x, CausalFrames? state, bool ownsInput)
    {
        Tensor? shortcut = null, normed = null, h = null;
        try
        {
            if (_shortcut is not null) shortcut = _shortcut.Forward(ops, x);
            normed = _norm1.Forward(ops, x, silu: true);
            if (ownsInput && shortcut is not null) x.Dispose();
            var taken = normed;
            normed = null;
            h = _conv1.ForwardConsuming(ops, taken, state);
            normed = _norm2.Forward(ops, h, silu: true);
            h.Dispose();
            taken = normed;
            normed = null;
            return _conv2.ForwardConsuming(ops, taken, state, residual: shortcut ?? x);
        }
        finally
        {
            normed?.Dispose();
            h?.Dispose();
            shortcut?.Dispose();
            if (ownsInput) x.Dispose();   // a second dispose is a no-op
        }
    }
}
