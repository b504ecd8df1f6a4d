using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers: <c>QwenImageEncoder3d</c> / <c>WanEncoder3d</c>, a frame at a time. <c>down_blocks</c> is one flat
/// list: per level its residual blocks, then (but for the last level) a resample whose 2D conv pads right and bottom
/// by one and strides 2 (and, on temporal levels of a video, halves the frame rate). Wan 2.2 patchifies the image 2x2
/// first and makes each level one residual down block (<see cref="WanResidualDownBlock"/>).
/// </summary>
internal sealed class QwenImageEncoder
{
    private readonly FrameStages _stages;

    /// <param name="frames">read the temporal taps, for video; without, only images can be encoded.</param>
    public QwenImageEncoder(DeviceParameters p, QwenImageConfig config, bool frames)
    {
        var dims = config.EncoderDims;
        var convIn = new CausalConv3d(p, "encoder.conv_in", Conv2dSpec.Same, frames);
        _stages = config.PatchSize == 1
            ? new FrameStages("encoder.conv_in", (ops, x, state) => convIn.Forward(ops, x, state))
            : new FrameStages("encoder.conv_in", (ops, x, state) =>
                convIn.ForwardConsuming(ops, ops.SpaceToDepth(x, null, PixelShuffleSpec.WanPatch(config.PatchSize)), state));
        if (config.IsResidual)
        {
            for (int i = 0; i < config.DimMult.Count; i++)
            {
                var block = new WanResidualDownBlock(p, $"encoder.down_blocks.{i}", config, i, frames);
                _stages.Add($"encoder.down_blocks.{i}", block.Forward);
            }
        }
        else
        {
            AddFlatLevels(p, config, frames);
        }
        var midBlock = new QwenImageMidBlock(p, "encoder.mid_block", dims[^1], frames);
        _stages.Add("encoder.mid_block", (ops, x, state) => midBlock.Forward(ops, x, state, ownsInput: true));
        var normOut = new RmsNorm(p, "encoder.norm_out");
        var convOut = new CausalConv3d(p, "encoder.conv_out", Conv2dSpec.Same, frames);
        _stages.Add("encoder.conv_out", (ops, x, state) =>
        {
            Tensor normed;
            using (x) normed = normOut.Forward(ops, x, silu: true);
            return convOut.ForwardConsuming(ops, normed, state);
        });
    }

    /// <summary>Wan 2.1's levels: one flat list of residual blocks, each level's followed by its resample (but the last).</summary>
    private void AddFlatLevels(DeviceParameters p, QwenImageConfig config, bool frames)
    {
        var dims = config.EncoderDims;
        int k = 0;
        for (int i = 0; i < config.DimMult.Count; i++)
        {
            int inDim = dims[i], outDim = dims[i + 1];
            for (int j = 0; j < config.NumResBlocks; j++)
            {
                var block = new QwenImageResidualBlock(p, $"encoder.down_blocks.{k}", inDim, outDim, frames);
                _stages.Add($"encoder.down_blocks.{k++}", (ops, x, state) => block.Forward(ops, x, state, ownsInput: true));
                inDim = outDim;
            }
            if (i == config.DimMult.Count - 1) continue;
            var resample = QwenImageResample.Down(p, $"encoder.down_blocks.{k}", config.DownsamplesTime(i), frames);
            _stages.Add($"encoder.down_blocks.{k++}", resample.Forward);
        }
    }

    /// <summary>Image [N, 3, H, W] in [-1, 1] to [N, 2z, H/f, W/f] (before quant_conv).</summary>
    public Tensor Forward(IBackend ops, Tensor image, BlockObserver? observe) =>
        _stages.Single(ops, image, observe);

    /// <summary>
    /// One video frame [N, 3, H, W] through the encoder with the pass's <paramref name="state"/>;
    /// <paramref name="emit"/> takes each [N, 2z, h, w] it completes (one per chunk of frames).
    /// </summary>
    public void Forward(IBackend ops, Tensor frame, CausalFrames state, Action<Tensor> emit) =>
        _stages.Push(ops, frame, state, observe: null, emit);


    /// <summary>Releases the previous activation and moves on to the next.</summary>
    internal static Tensor Step(Tensor previous, Tensor next)
    {
        previous.Dispose();
        return next;
    }
}
