using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>QwenImageDecoder3d</c> / <c>WanDecoder3d</c>, a frame at a time: conv_in, the mid block, up blocks
/// of <c>num_res_blocks + 1</c> residual blocks whose upsampler (but the last level's) is nearest 2x then a 3x3 conv
/// to half the channels (and, on temporal levels of a video, doubles the frame rate), the RMS norm, SiLU, conv_out
/// and the clamp to [-1, 1] of diffusers' _decode. The next level's residual blocks start from that half. Wan 2.2's
/// levels are residual up blocks (<see cref="WanResidualUpBlock"/>) whose upsamplers keep their channels, and its
/// output is unpatchified 2x2 before the clamp.
/// </summary>
internal sealed class QwenImageDecoder
{
    private readonly FrameStages _stages;

    /// <param name="frames">read the temporal taps, for video; without, only images can be decoded.</param>
    public QwenImageDecoder(DeviceParameters p, QwenImageConfig config, bool frames)
    {
        var dims = config.DecoderDims;
        var convIn = new CausalConv3d(p, "decoder.conv_in", Conv2dSpec.Same, frames);
        _stages = new FrameStages("decoder.conv_in", (ops, x, state) => convIn.Forward(ops, x, state));
        var midBlock = new QwenImageMidBlock(p, "decoder.mid_block", dims[0], frames);
        _stages.Add("decoder.mid_block", (ops, x, state) => midBlock.Forward(ops, x, state, ownsInput: true));
        int levels = config.DimMult.Count;
        for (int i = 0; i < levels; i++)
        {
            if (config.IsResidual)
            {
                var block = new WanResidualUpBlock(p, $"decoder.up_blocks.{i}", config, i, frames);
                _stages.Add($"decoder.up_blocks.{i}", block.Forward);
                continue;
            }
            int inDim = config.DecoderLevelInput(i), outDim = dims[i + 1];
            var resnets = new QwenImageResidualBlock[config.NumResBlocks + 1];
            for (int j = 0; j < resnets.Length; j++)
            {
                resnets[j] = new QwenImageResidualBlock(p, $"decoder.up_blocks.{i}.resnets.{j}", inDim, outDim, frames);
                inDim = outDim;
            }
            bool upsamples = i < levels - 1;
            _stages.Add(upsamples ? null : $"decoder.up_blocks.{i}", (ops, x, state) =>
            {
                foreach (var resnet in resnets) x = resnet.Forward(ops, x, state, ownsInput: true);
                return x;
            });
            if (!upsamples) continue;
            var upsampler = QwenImageResample.Up(p, $"decoder.up_blocks.{i}.upsamplers.0", config.TemporalUpsample[i], frames);
            _stages.Add($"decoder.up_blocks.{i}", upsampler.Forward);
        }
        var normOut = new RmsNorm(p, "decoder.norm_out");
        var convOut = new CausalConv3d(p, "decoder.conv_out", Conv2dSpec.Same, frames);
        _stages.Add("decoder.conv_out", (ops, x, state) =>
        {
            Tensor normed;
            using (x) normed = normOut.Forward(ops, x, silu: true);
            return convOut.ForwardConsuming(ops, normed, state);
        });
        if (config.PatchSize == 1) return;
        var patch = PixelShuffleSpec.WanPatch(config.PatchSize);
        _stages.Add("unpatchify", (ops, x, _) =>
        {
            using (x) return ops.DepthToSpace(x, patch, 0);
        });
    }

    /// <summary>diffusers' _decode's last step: the clamp to [-1, 1] (of the whole image, after any tiles are blended).</summary>
    private static Tensor Clamp(IBackend ops, Tensor y)
    {
        using (y) return ops.Unary(UnaryOp.ClampUnit, y);
    }

    /// <summary>
    /// [N, z, h, w] (after post_quant_conv) to the image [N, 3, h*f, w*f], clamped to [-1, 1] as diffusers' _decode
    /// (reported as "sample"), or not when <paramref name="clamp"/> is false.
    /// </summary>
    public Tensor Forward(IBackend ops, Tensor z, BlockObserver? observe, bool clamp = true)
    {
        var y = _stages.Single(ops, z, observe);
        if (!clamp) return y;
        var sample = Clamp(ops, y);
        try
        {
            observe?.Invoke("sample", sample);
        }
        catch
        {
            sample.Dispose();
            throw;
        }
        return sample;
    }

    /// <summary>
    /// One latent frame [N, z, h, w] (after post_quant_conv) through the decoder with the pass's
    /// <paramref name="state"/>; <paramref name="emit"/> takes each clamped frame [N, 3, H, W] it makes (1 for the
    /// first latent frame, 4 for each later one with Wan's two temporal levels).
    /// </summary>
    public void Forward(IBackend ops, Tensor z, CausalFrames state, Action<Tensor> emit) =>
        _stages.Push(ops, z, state, observe: null, y => emit(Clamp(ops, y)));
}
