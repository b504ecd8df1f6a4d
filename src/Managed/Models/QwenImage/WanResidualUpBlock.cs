using NativeVae.Core;
using NativeVae.Models.Layers;

namespace NativeVae.Models.QwenImage;

/// <summary>
/// diffusers' <c>WanResidualUpBlock</c> (Wan 2.2's decoder level), a frame at a time: <c>num_res_blocks + 1</c>
/// residual blocks and (but on the last level) an upsampler that keeps its channels, plus the block's input
/// duplicated up by <c>DupUp3D</c>, a parameter-free depth to space of repeated channels
/// (<see cref="IBackend.DepthToSpace"/>), one output frame of its block per frame the upsampler makes. The last level
/// has no shortcut.
/// <para>
/// On a temporal level the upsampler makes one frame of the first ("Rep") and two of every later one; DupUp3D makes two
/// of each and drops the first of the first chunk's, so its frames are the last the upsampler's count leaves.
/// </para>
/// </summary>
internal sealed class WanResidualUpBlock
{
    private readonly QwenImageResidualBlock[] _resnets;
    private readonly QwenImageResample? _upsampler;
    private readonly PixelShuffleSpec _shortcut;

    public WanResidualUpBlock(DeviceParameters p, string prefix, QwenImageConfig config, int level, bool frames)
    {
        var dims = config.DecoderDims;
        _resnets = new QwenImageResidualBlock[config.NumResBlocks + 1];
        for (int j = 0, inDim = config.DecoderLevelInput(level); j < _resnets.Length; j++, inDim = dims[level + 1])
            _resnets[j] = new QwenImageResidualBlock(p, $"{prefix}.resnets.{j}", inDim, dims[level + 1], frames);
        if (level == config.DimMult.Count - 1) return;
        _upsampler = QwenImageResample.Up(p, $"{prefix}.{QwenImageParameters.UpsamplerName(config)}", config.TemporalUpsample[level], frames);
        _shortcut = config.UpShortcut(level);
    }

    /// <summary>Consumes <paramref name="x"/>; the frames it makes of it (one, or two on a temporal level after the first).</summary>
    public IReadOnlyList<Tensor> Forward(IBackend ops, Tensor x, CausalFrames? state)
    {
        Tensor? h = null;
        var made = new List<Tensor>();
        try
        {
            // The input stays for the shortcut: the first resnet reads it without consuming it.
            h = _resnets[0].Forward(ops, x, state, ownsInput: _upsampler is null);
            for (int j = 1; j < _resnets.Length; j++)
            {
                var input = h;
                h = null;
                h = _resnets[j].Forward(ops, input, state, ownsInput: true);
            }
            if (_upsampler is null)
            {
                var last = h;
                h = null;
                return [last];
            }
            var taken = h;
            h = null;
            var outputs = _upsampler.Forward(ops, taken, state);
            int first = _shortcut.Frames - outputs.Count;
            try
            {
                for (int i = 0; i < outputs.Count; i++)
                {
                    using var shortcut = ops.DepthToSpace(x, _shortcut, first + i);
                    made.Add(ops.Add(outputs[i], shortcut));
                }
            }
            finally
            {
                foreach (var output in outputs) output.Dispose();
            }
            return made;
        }
        catch
        {
            foreach (var frame in made) frame.Dispose();
            throw;
        }
        finally
        {
            h?.Dispose();
            x.Dispose();   // a second dispose is a no-op
        }
    }
}
