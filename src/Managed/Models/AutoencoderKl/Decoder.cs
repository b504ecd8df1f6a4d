using NativeVae.Models;
using NativeVae.Models.Layers;
using NativeVae.Core;

namespace NativeVae.Models.AutoencoderKl;

/// <summary>diffusers: <c>Decoder</c> (vae.py) with <c>UpDecoderBlock2D</c> blocks over reversed channels.</summary>
internal sealed class Decoder
{
    private readonly Conv2d _convIn;
    private readonly UNetMidBlock2D _midBlock;
    private readonly ResnetStack[] _upBlocks;
    private readonly GroupNorm _convNormOut;
    private readonly Conv2d _convOut;

    public Decoder(DeviceParameters p, AutoencoderKlConfig config)
    {
        var ch = config.DecoderChannels;
        int blocks = ch.Count;
        _convIn = new Conv2d(p, "decoder.conv_in", Conv2dSpec.Same);
        _midBlock = new UNetMidBlock2D(p, "decoder.mid_block", ch[^1], config);
        _upBlocks = new ResnetStack[blocks];
        int previous = ch[^1];
        for (int i = 0; i < blocks; i++)
        {
            int output = ch[blocks - 1 - i];
            bool last = i == blocks - 1;
            _upBlocks[i] = new ResnetStack(p, $"decoder.up_blocks.{i}", previous, output, config.LayersPerBlock + 1,
                last ? null : "upsamplers", Conv2dSpec.UpsampleSame, config);
            previous = output;
        }
        _convNormOut = new GroupNorm(p, "decoder.conv_norm_out", config.NormNumGroups, config.NormEps);
        _convOut = new Conv2d(p, "decoder.conv_out", Conv2dSpec.Same);
    }

    /// <summary>Latent [N, latent, h, w] to image [N, 3, h*f, w*f] in about [-1, 1].</summary>
    public Tensor Forward(IBackend ops, Tensor latent, BlockObserver? observe = null)
    {
        Tensor h = _convIn.Forward(ops, latent);                              // [N, Clast, h, w]
        try
        {
            observe?.Invoke("decoder.conv_in", h);
            h = _midBlock.Forward(ops, h, ownsInput: true);
            observe?.Invoke("decoder.mid_block", h);
            for (int i = 0; i < _upBlocks.Length; i++)
            {
                h = _upBlocks[i].Forward(ops, h, ownsInput: true);               // channels reversed, 2x up except last
                observe?.Invoke($"decoder.up_blocks.{i}", h);
            }
            h = Encoder.Step(h, _convOut.Forward(ops, h, _convNormOut, silu: true)); // [N, 3, H, W]
            observe?.Invoke("decoder.conv_out", h);
            return h;
        }
        catch
        {
            h.Dispose();   // an observer may cancel; the activation must go back to the pool (a block that failed already disposed it: no-op)
            throw;
        }
    }
}
