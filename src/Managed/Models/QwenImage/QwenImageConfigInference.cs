namespace NativeVae.Models.QwenImage;

/// <summary>
/// An AutoencoderKLQwenImage config read off its tensors (diffusers names) when a file comes without config.json:
/// base_dim, input channels and z_dim from the end convs, num_res_blocks and the levels from the flat
/// <c>down_blocks</c> list (a resample after every <c>num_res_blocks</c> resnets), each level's channels from its
/// first resnet, and temperal_downsample from which resamples have a time_conv; Wan 2.2's from its residual down
/// blocks (<c>down_blocks.{i}.resnets.{j}</c>, <c>down_blocks.{i}.downsampler</c>), its decoder_base_dim from the
/// decoder's conv_in and its 2x2 patchify from conv_in's 12 input channels. latents_mean/std are not in the tensors:
/// the published ones (Qwen-Image's and Wan 2.1's, or Wan 2.2's for 48 channels) apply.
/// </summary>
internal static class QwenImageConfigInference
{
    private const int ConvRank3d = 5;

    /// <exception cref="InvalidDataException">a tensor the structure needs is missing or of the wrong rank.</exception>
    public static QwenImageConfig Infer(IReadOnlyDictionary<string, TensorShape> shapes, string origin)
    {
        TensorShape Need(string name, int rank) => shapes.TryGetValue(name, out var s)
            ? s.Rank == rank ? s : throw new InvalidDataException($"{origin}: cannot infer the config: tensor '{name}' has shape {s}, not a {rank}-d weight")
            : throw new InvalidDataException($"{origin}: cannot infer the config: tensor '{name}' is missing");

        var convIn = Need("encoder.conv_in.weight", ConvRank3d);
        int baseDim = convIn[0];
        bool residual = shapes.ContainsKey("encoder.down_blocks.0.resnets.0.norm1.gamma");
        var (resBlocks, dimMult, temporal) = residual ? NestedLevels(shapes, baseDim) : FlatLevels(shapes, baseDim, Need);
        int z = Need("post_quant_conv.weight", ConvRank3d)[0];
        int decoderBase = Need("decoder.conv_in.weight", ConvRank3d)[0] / Math.Max(1, dimMult.Count > 0 ? dimMult[^1] : 1);
        // Wan 2.2 patchifies 3-channel images 2x2; no published VAE takes 12 channels of its own.
        int patch = residual && convIn[1] == Core.IBackend.PatchedImageChannels ? 2 : 1;
        var published = z == QwenImageConfig.Wan22.ZDim ? QwenImageConfig.Wan22 : QwenImageConfig.QwenImage;
        return new QwenImageConfig
        {
            BaseDim = baseDim,
            DecoderBaseDim = decoderBase == baseDim ? null : decoderBase,
            InputChannels = convIn[1] / (patch * patch),
            PatchSize = patch,
            IsResidual = residual,
            ZDim = z,
            NumResBlocks = resBlocks,
            DimMult = dimMult,
            TemporalDownsample = temporal,
            LatentsMean = z == published.ZDim ? published.LatentsMean : new float[z],
            LatentsStd = z == published.ZDim ? published.LatentsStd : Enumerable.Repeat(1f, z).ToArray(),
        };
    }

    /// <summary>Wan 2.1's flat <c>down_blocks</c>: level i starts at block i * (resBlocks + 1); all but the last end in a resample.</summary>
    private static (int ResBlocks, List<int> DimMult, List<bool> Temporal) FlatLevels(IReadOnlyDictionary<string, TensorShape> shapes, int baseDim,
        Func<string, int, TensorShape> need)
    {
        int resBlocks = 0;
        while (resBlocks <= QwenImageConfig.MaxResBlocks && shapes.ContainsKey($"encoder.down_blocks.{resBlocks}.norm1.gamma")) resBlocks++;
        if (resBlocks == 0) need("encoder.down_blocks.0.norm1.gamma", 4);
        var dimMult = new List<int>();
        var temporal = new List<bool>();
        for (int level = 0; level <= QwenImageConfig.MaxLevels; level++)
        {
            int first = level * (resBlocks + 1);
            if (!shapes.TryGetValue($"encoder.down_blocks.{first}.conv1.weight", out var conv)) break;
            dimMult.Add(conv[0] / Math.Max(1, baseDim));
            string resample = $"encoder.down_blocks.{first + resBlocks}";
            if (!shapes.ContainsKey(resample + ".resample.1.weight")) break;
            temporal.Add(shapes.ContainsKey(resample + ".time_conv.weight"));
        }
        return (resBlocks, dimMult, temporal);
    }

    /// <summary>Wan 2.2's residual down blocks, one per level: <c>resnets.{j}</c>, then (but the last) a <c>downsampler</c>.</summary>
    private static (int ResBlocks, List<int> DimMult, List<bool> Temporal) NestedLevels(IReadOnlyDictionary<string, TensorShape> shapes, int baseDim)
    {
        int resBlocks = 0;
        while (resBlocks <= QwenImageConfig.MaxResBlocks && shapes.ContainsKey($"encoder.down_blocks.0.resnets.{resBlocks}.norm1.gamma")) resBlocks++;
        var dimMult = new List<int>();
        var temporal = new List<bool>();
        for (int level = 0; level <= QwenImageConfig.MaxLevels; level++)
        {
            string block = $"encoder.down_blocks.{level}";
            if (!shapes.TryGetValue($"{block}.resnets.0.conv1.weight", out var conv)) break;
            dimMult.Add(conv[0] / Math.Max(1, baseDim));
            if (!shapes.ContainsKey($"{block}.downsampler.resample.1.weight")) break;
            temporal.Add(shapes.ContainsKey($"{block}.downsampler.time_conv.weight"));
        }
        return (resBlocks, dimMult, temporal);
    }
}
