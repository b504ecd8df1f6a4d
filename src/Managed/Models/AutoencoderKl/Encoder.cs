using NativeVae.Models;
using NativeVae.Models.Layers;
using NativeVae.Core;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>diffusers: <c>Encoder</c> (vae.py) with <c>DownEncoderBlock2D</c> blocks and double_z output.</summary>
internal sealed class Encoder
{
    private readonly Conv2d _convIn;
    private readonly ResnetStack[] _downBlocks;
    private readonly UNetMidBlock2D _midBlock;
    private readonly GroupNorm _convNormOut;
    private readonly Conv2d _convOut;

    public Encoder(DeviceParameters p, AutoencoderKlConfig config)
    {
        var ch = config.BlockOutChannels;
        _convIn = new Conv2d(p, "encoder.conv_in", Conv2dSpec.Same);
        _downBlocks = new ResnetStack[ch.Count];
        for (int i = 0; i < ch.Count; i++)
        {
            bool last = i == ch.Count - 1;
            _downBlocks[i] = new ResnetStack(p, $"encoder.down_blocks.{i}", i == 0 ? ch[0] : ch[i - 1], ch[i],
                config.LayersPerBlock, last ? null : "downsamplers", Conv2dSpec.DownsampleAsymmetric, config);
        }
        _midBlock = new UNetMidBlock2D(p, "encoder.mid_block", ch[^1], config);
        _convNormOut = new GroupNorm(p, "encoder.conv_norm_out", config.NormNumGroups, config.NormEps);
        _convOut = new Conv2d(p, "encoder.conv_out", Conv2dSpec.Same);
    }

    /// <summary>Image [N, 3, H, W] in [-1, 1] to moments [N, 2*latent, H/f, W/f].</summary>
    public Tensor Forward(IBackend ops, Tensor image, BlockObserver? observe = null)
    {
        Tensor h = _convIn.Forward(ops, image);                              // [N, C0, H, W]
        try
        {
            observe?.Invoke("encoder.conv_in", h);
            for (int i = 0; i < _downBlocks.Length; i++)
            {
                h = _downBlocks[i].Forward(ops, h, ownsInput: true);                     // [N, Ci, H/2^i', W/2^i']
                observe?.Invoke($"encoder.down_blocks.{i}", h);
            }
            h = _midBlock.Forward(ops, h, ownsInput: true);                              // [N, Clast, h, w]
            observe?.Invoke("encoder.mid_block", h);
            h = Step(h, _convOut.Forward(ops, h, _convNormOut, silu: true));                               // [N, 2*latent, h, w]
            observe?.Invoke("encoder.conv_out", h);
            return h;
        }
        catch
        {
            h.Dispose();   // an observer may cancel; the activation must go back to the pool (a block that failed already disposed it: no-op)
            throw;
        }
    }

    /// <summary>Releases the previous activation and moves on to the next.</summary>
    internal static Tensor Step(Tensor previous, Tensor next)
    {
        previous.Dispose();
        return next;
    }
}
