using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers' <c>WanResidualDownBlock</c> (Wan 2.2's encoder level), a frame at a time: <c>num_res_blocks</c> residual
/// blocks and (but on the last level) a downsampler, plus the block's input averaged down by <c>AvgDown3D</c>, a
/// parameter-free 2x2 space to depth with a mean over channel groups (<see cref="IBackend.SpaceToDepth"/>).
/// <para>
/// On a temporal level the downsampler makes a frame of the first frame and then of every second one
/// (<see cref="QwenImageResample"/>); AvgDown3D folds frames in pairs within diffusers' chunks of 1, then 4 (or 2),
/// which are the pairs (zero, 0), (1, 2), (3, 4), ...: so the block keeps each odd frame to average with the next.
/// </para>
/// </summary>
internal sealed class WanResidualDownBlock
{
    private readonly QwenImageResidualBlock[] _resnets;
    private readonly QwenImageResample? _downsampler;
    private readonly PixelShuffleSpec _shortcut;

    public WanResidualDownBlock(DeviceParameters p, string prefix, QwenImageConfig config, int level, bool frames)
    {
        var dims = config.EncoderDims;
        _resnets = new QwenImageResidualBlock[config.NumResBlocks];
        for (int j = 0, inDim = dims[level]; j < _resnets.Length; j++, inDim = dims[level + 1])
            _resnets[j] = new QwenImageResidualBlock(p, $"{prefix}.resnets.{j}", inDim, dims[level + 1], frames);
        if (level < config.DimMult.Count - 1)
            _downsampler = QwenImageResample.Down(p, prefix + ".downsampler", config.DownsamplesTime(level), frames);
        _shortcut = config.DownShortcut(level);
    }

    /// <summary>Consumes <paramref name="x"/>; the frame it makes of it, or none (the odd frames of a temporal level).</summary>
    public IReadOnlyList<Tensor> Forward(IBackend ops, Tensor x, CausalFrames? state)
    {
        // The block's own history holds the odd frame a temporal shortcut pairs with the next; an image is frame 0.
        var history = state?.Of(this);
        int seen = history?.Seen ?? 0;
        bool pairs = _shortcut.Frames == 2;
        Tensor? shortcut = null, h = x;
        try
        {
            if (!pairs || seen % 2 == 0)
                shortcut = ops.SpaceToDepth(x, pairs && seen > 0 ? history!.Newer : null, _shortcut);
            if (pairs && seen % 2 == 1) history!.Push(ops, x);
            else history?.Skip();
            foreach (var resnet in _resnets)
            {
                var input = h;
                h = null;
                h = resnet.Forward(ops, input, state, ownsInput: true);
            }
            var taken = h;
            h = null;
            var outputs = _downsampler is null ? [taken] : _downsampler.Forward(ops, taken, state);
            if (outputs.Count == 0) return outputs;
            using (var main = outputs[0])
                return [ops.Add(main, shortcut!)];
        }
        finally
        {
            h?.Dispose();
            shortcut?.Dispose();
        }
    }
}
