using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>QwenImageDecoder3d</c> on one frame: conv_in, the mid block, up blocks of <c>num_res_blocks + 1</c>
/// residual blocks whose upsampler (but the last level's) is nearest 2x then a 3x3 conv to half the channels, the
/// RMS norm, SiLU and conv_out. The next level's residual blocks start from that half.
/// </summary>
internal sealed class QwenImageDecoder
{
    private readonly Conv2d _convIn;
    private readonly QwenImageMidBlock _midBlock;
    private readonly (QwenImageResidualBlock[] Resnets, Conv2d? Upsampler)[] _upBlocks;
    private readonly RmsNorm _normOut;
    private readonly Conv2d _convOut;

    public QwenImageDecoder(DeviceParameters p, QwenImageConfig config)
    {
        var dims = config.DecoderDims;
        _convIn = new Conv2d(p, "decoder.conv_in", Conv2dSpec.Same);
        _midBlock = new QwenImageMidBlock(p, "decoder.mid_block", dims[0]);
        _upBlocks = new (QwenImageResidualBlock[], Conv2d?)[config.DimMult.Count];
        for (int i = 0; i < _upBlocks.Length; i++)
        {
            int inDim = i > 0 ? dims[i] / 2 : dims[i], outDim = dims[i + 1];
            var resnets = new QwenImageResidualBlock[config.NumResBlocks + 1];
            for (int j = 0; j < resnets.Length; j++)
            {
                resnets[j] = new QwenImageResidualBlock(p, $"decoder.up_blocks.{i}.resnets.{j}", inDim, outDim);
                inDim = outDim;
            }
            var upsampler = i < _upBlocks.Length - 1
                ? new Conv2d(p, $"decoder.up_blocks.{i}.upsamplers.0.resample.1", Conv2dSpec.UpsampleSame)
                : null;
            _upBlocks[i] = (resnets, upsampler);
        }
        _normOut = new RmsNorm(p, "decoder.norm_out");
        _convOut = new Conv2d(p, "decoder.conv_out", Conv2dSpec.Same);
    }

    /// <summary>[N, z, h, w] (after post_quant_conv) to the image [N, 3, h*f, w*f], clamped to [-1, 1] as diffusers' _decode.</summary>
    public Tensor Forward(IBackend ops, Tensor z, BlockObserver? observe)
    {
        Tensor h = _convIn.Forward(ops, z);
        try
        {
            observe?.Invoke("decoder.conv_in", h);
            h = _midBlock.Forward(ops, h, ownsInput: true);
            observe?.Invoke("decoder.mid_block", h);
            for (int i = 0; i < _upBlocks.Length; i++)
            {
                var (resnets, upsampler) = _upBlocks[i];
                foreach (var resnet in resnets) h = resnet.Forward(ops, h, ownsInput: true);
                if (upsampler is not null) h = QwenImageEncoder.Step(h, upsampler.Forward(ops, h));
                observe?.Invoke($"decoder.up_blocks.{i}", h);
            }
            using (var normed = _normOut.Forward(ops, h, silu: true))
                h = QwenImageEncoder.Step(h, _convOut.Forward(ops, normed));
            observe?.Invoke("decoder.conv_out", h);
            h = QwenImageEncoder.Step(h, ops.Unary(UnaryOp.ClampUnit, h));
            observe?.Invoke("sample", h);
            return h;
        }
        catch
        {
            h.Dispose();
            throw;
        }
    }
}
