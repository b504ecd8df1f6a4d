namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// Infers an AutoencoderKL config from its tensors (canonical names) when a checkpoint comes without
/// config.json: in/out/latent channels, block channels, layers per block, quant convs and mid-block attention
/// are read off the shapes; norm_num_groups (not visible in shapes) is 32 as in every published model;
/// sample size and scaling/shift factors are the published ones of the recognised family.
/// </summary>
internal static class AutoencoderKlConfigInference
{
    private const int PublishedNormGroups = 32;
    private const int FluxLatentChannels = 16;

    /// <exception cref="InvalidDataException">a tensor the structure needs is missing.</exception>
    public static AutoencoderKlConfig Infer(IReadOnlyDictionary<string, TensorShape> shapes, string origin)
    {
        // Every tensor read here is a conv weight [out, in, kh, kw]; another rank is refused by name, not indexed.
        const int ConvRank = 4;
        TensorShape Conv(string name, TensorShape shape) => shape.Rank == ConvRank
            ? shape
            : throw new InvalidDataException($"{origin}: cannot infer the config: tensor '{name}' has shape {shape}, not a 4-d conv weight");
        TensorShape Need(string name) => shapes.TryGetValue(name, out var s)
            ? Conv(name, s)
            : throw new InvalidDataException($"{origin}: cannot infer the config: tensor '{name}' is missing");

        var blockChannels = new List<int>();
        // at most one more level than the config may have, so that Validate names the count
        while (blockChannels.Count <= AutoencoderKlConfig.MaxBlocks
               && shapes.TryGetValue($"encoder.down_blocks.{blockChannels.Count}.resnets.0.conv1.weight", out var conv))
            blockChannels.Add(Conv($"encoder.down_blocks.{blockChannels.Count}.resnets.0.conv1.weight", conv)[0]);
        if (blockChannels.Count == 0) Need("encoder.down_blocks.0.resnets.0.conv1.weight");
        int layers = 0;
        while (shapes.ContainsKey($"encoder.down_blocks.0.resnets.{layers}.conv1.weight")) layers++;
        // The decoder's levels, deepest first in up_blocks; FLUX.2's small decoder is narrower than its encoder.
        var decoderChannels = new int[blockChannels.Count];
        for (int i = 0; i < decoderChannels.Length; i++)
        {
            string name = $"decoder.up_blocks.{i}.resnets.0.conv1.weight";
            decoderChannels[decoderChannels.Length - 1 - i] = shapes.ContainsKey(name) ? Need(name)[0] : blockChannels[decoderChannels.Length - 1 - i];
        }
        bool batchNorm = shapes.ContainsKey(AutoencoderKlParameters.BatchNormMean) || shapes.ContainsKey(AutoencoderKlParameters.BatchNormVariance);

        return new AutoencoderKlConfig
        {
            InChannels = Need("encoder.conv_in.weight")[1],
            OutChannels = Need("decoder.conv_out.weight")[0],
            BlockOutChannels = blockChannels,
            LayersPerBlock = layers,
            LatentChannels = Need("decoder.conv_in.weight")[1],
            NormNumGroups = PublishedNormGroups,
            UseQuantConv = shapes.ContainsKey("quant_conv.weight"),
            UsePostQuantConv = shapes.ContainsKey("post_quant_conv.weight"),
            MidBlockAddAttention = shapes.ContainsKey("encoder.mid_block.attentions.0.to_q.weight"),
            DecoderBlockOutChannels = decoderChannels.SequenceEqual(blockChannels) ? null : decoderChannels,
            LatentBatchNorm = batchNorm,
        };
    }

    /// <summary>The family a structure belongs to: a latent batch norm is FLUX.2, 16 latent channels without quant
    /// convs is FLUX.1, else SD (SDXL's VAE has SD's exact structure; only <c>--family sdxl</c> or a config tells
    /// them apart).</summary>
    public static ModelFamily Recognise(AutoencoderKlConfig config) =>
        config.LatentBatchNorm ? ModelFamily.Flux2
        : config.LatentChannels == FluxLatentChannels && !config.UseQuantConv ? ModelFamily.Flux
        : ModelFamily.Sd;

    /// <summary>The config with the family's published sample size and scaling/shift factors.</summary>
    public static AutoencoderKlConfig WithFamilyFactors(AutoencoderKlConfig config, ModelFamily family)
    {
        var published = AutoencoderKlConfig.For(family);
        return config with
        {
            SampleSize = published.SampleSize,
            ScalingFactor = published.ScalingFactor,
            ShiftFactor = published.ShiftFactor,
        };
    }
}
