using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>QwenImageEncoder3d</c> on one frame. <c>down_blocks</c> is one flat list: per level its residual
/// blocks, then (but for the last level) a resample, whose 2D conv pads right and bottom by one and strides 2.
/// </summary>
internal sealed class QwenImageEncoder
{
    private readonly Conv2d _convIn;
    private readonly List<(string Name, Func<IBackend, Tensor, Tensor> Run)> _downBlocks = [];
    private readonly QwenImageMidBlock _midBlock;
    private readonly RmsNorm _normOut;
    private readonly Conv2d _convOut;

    public QwenImageEncoder(DeviceParameters p, QwenImageConfig config)
    {
        var dims = config.EncoderDims;
        _convIn = new Conv2d(p, "encoder.conv_in", Conv2dSpec.Same);
        int k = 0;
        for (int i = 0; i < config.DimMult.Count; i++)
        {
            int inDim = dims[i], outDim = dims[i + 1];
            for (int j = 0; j < config.NumResBlocks; j++)
            {
                var block = new QwenImageResidualBlock(p, $"encoder.down_blocks.{k}", inDim, outDim);
                _downBlocks.Add(($"encoder.down_blocks.{k++}", (ops, x) => block.Forward(ops, x, ownsInput: true)));
                inDim = outDim;
            }
            if (i == config.DimMult.Count - 1) continue;
            var resample = new Conv2d(p, $"encoder.down_blocks.{k}.resample.1", Conv2dSpec.DownsampleAsymmetric);
            _downBlocks.Add(($"encoder.down_blocks.{k++}", (ops, x) => Step(x, resample.Forward(ops, x))));
        }
        _midBlock = new QwenImageMidBlock(p, "encoder.mid_block", dims[^1]);
        _normOut = new RmsNorm(p, "encoder.norm_out");
        _convOut = new Conv2d(p, "encoder.conv_out", Conv2dSpec.Same);
    }

    /// <summary>Image [N, 3, H, W] in [-1, 1] to [N, 2z, H/f, W/f] (before quant_conv).</summary>
    public Tensor Forward(IBackend ops, Tensor image, BlockObserver? observe)
    {
        Tensor h = _convIn.Forward(ops, image);
        try
        {
            observe?.Invoke("encoder.conv_in", h);
            foreach (var (name, run) in _downBlocks)
            {
                h = run(ops, h);
                observe?.Invoke(name, h);
            }
            h = _midBlock.Forward(ops, h, ownsInput: true);
            observe?.Invoke("encoder.mid_block", h);
            using (var normed = _normOut.Forward(ops, h, silu: true))
                h = Step(h, _convOut.Forward(ops, normed));
            observe?.Invoke("encoder.conv_out", h);
            return h;
        }
        catch
        {
            h.Dispose();   // a block that failed already disposed its input: no-op
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
