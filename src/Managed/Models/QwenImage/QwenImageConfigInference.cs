namespace NativeVae.Models.QwenImage;

/// <summary>
/// An AutoencoderKLQwenImage config read off its tensors (diffusers names) when a file comes without config.json:
/// base_dim, input channels and z_dim from the end convs, num_res_blocks and the levels from the flat
/// <c>down_blocks</c> list (a resample after every <c>num_res_blocks</c> resnets), each level's channels from its
/// first resnet, and temperal_downsample from which resamples have a time_conv. latents_mean/std are not in the
/// tensors: the published ones (Qwen-Image's and Wan 2.1's) apply.
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
        int resBlocks = 0;
        while (resBlocks <= QwenImageConfig.MaxResBlocks && shapes.ContainsKey($"encoder.down_blocks.{resBlocks}.norm1.gamma")) resBlocks++;
        if (resBlocks == 0) Need("encoder.down_blocks.0.norm1.gamma", 4);
        var dimMult = new List<int>();
        var temporal = new List<bool>();
        // Level i starts at block i * (resBlocks + 1); all but the last end in a resample.
        for (int level = 0; level <= QwenImageConfig.MaxLevels; level++)
        {
            int first = level * (resBlocks + 1);
            if (!shapes.TryGetValue($"encoder.down_blocks.{first}.conv1.weight", out var conv)) break;
            dimMult.Add(conv[0] / Math.Max(1, baseDim));
            string resample = $"encoder.down_blocks.{first + resBlocks}";
            if (!shapes.ContainsKey(resample + ".resample.1.weight")) break;
            temporal.Add(shapes.ContainsKey(resample + ".time_conv.weight"));
        }
        var published = QwenImageConfig.QwenImage;
        int z = Need("post_quant_conv.weight", ConvRank3d)[0];
        return new QwenImageConfig
        {
            BaseDim = baseDim,
            InputChannels = convIn[1],
            ZDim = z,
            NumResBlocks = resBlocks,
            DimMult = dimMult,
            TemporalDownsample = temporal,
            LatentsMean = z == published.ZDim ? published.LatentsMean : new float[z],
            LatentsStd = z == published.ZDim ? published.LatentsStd : Enumerable.Repeat(1f, z).ToArray(),
        };
    }
}
