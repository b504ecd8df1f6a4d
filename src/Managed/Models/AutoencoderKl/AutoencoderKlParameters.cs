namespace NativeVae.Models.AutoencoderKl;

/// <summary>
/// Every parameter of diffusers' <c>AutoencoderKL</c> for a config: canonical diffusers name and shape, in the
/// order diffusers registers them (matches <c>../shared/reference/autoencoder_kl_keys.tsv</c> for the SD config).
/// </summary>
internal static class AutoencoderKlParameters
{
    private const int ConvKernel = 3;

    /// <summary>AutoencoderKLFlux2's <c>bn</c> running statistics: buffers the pipeline reads, never a layer's input.</summary>
    public const string BatchNormMean = "bn.running_mean";

    /// <inheritdoc cref="BatchNormMean"/>
    public const string BatchNormVariance = "bn.running_var";

    /// <summary>True for the <c>bn</c> buffers (host statistics, not uploaded with either half).</summary>
    public static bool IsBatchNormBuffer(string name) => name.StartsWith("bn.", StringComparison.Ordinal);

    public static List<(string Name, TensorShape Shape)> Enumerate(AutoencoderKlConfig config)
    {
        config.Validate();
        var list = new List<(string, TensorShape)>();
        var ch = config.BlockOutChannels;
        int blocks = ch.Count;

        // Encoder
        Conv(list, "encoder.conv_in", config.InChannels, ch[0], ConvKernel);
        int previous = ch[0];
        for (int i = 0; i < blocks; i++)
        {
            for (int j = 0; j < config.LayersPerBlock; j++)
            {
                Resnet(list, $"encoder.down_blocks.{i}.resnets.{j}", j == 0 ? previous : ch[i], ch[i]);
            }
            if (i < blocks - 1) Conv(list, $"encoder.down_blocks.{i}.downsamplers.0.conv", ch[i], ch[i], ConvKernel);
            previous = ch[i];
        }
        MidBlock(list, "encoder.mid_block", ch[^1], config.MidBlockAddAttention);
        Norm(list, "encoder.conv_norm_out", ch[^1]);
        Conv(list, "encoder.conv_out", ch[^1], 2 * config.LatentChannels, ConvKernel);

        // Decoder (FLUX.2's small decoder has its own levels)
        ch = config.DecoderChannels;
        Conv(list, "decoder.conv_in", config.LatentChannels, ch[^1], ConvKernel);
        MidBlock(list, "decoder.mid_block", ch[^1], config.MidBlockAddAttention);
        previous = ch[^1];
        for (int i = 0; i < blocks; i++)
        {
            int output = ch[blocks - 1 - i];
            for (int j = 0; j < config.LayersPerBlock + 1; j++)
            {
                Resnet(list, $"decoder.up_blocks.{i}.resnets.{j}", j == 0 ? previous : output, output);
            }
            if (i < blocks - 1) Conv(list, $"decoder.up_blocks.{i}.upsamplers.0.conv", output, output, ConvKernel);
            previous = output;
        }
        Norm(list, "decoder.conv_norm_out", ch[0]);
        Conv(list, "decoder.conv_out", ch[0], config.OutChannels, ConvKernel);

        if (config.UseQuantConv) Conv(list, "quant_conv", 2 * config.LatentChannels, 2 * config.LatentChannels, 1);
        if (config.UsePostQuantConv) Conv(list, "post_quant_conv", config.LatentChannels, config.LatentChannels, 1);
        if (config.LatentBatchNorm)
        {
            list.Add((BatchNormMean, new TensorShape(config.PatchedLatentChannels)));
            list.Add((BatchNormVariance, new TensorShape(config.PatchedLatentChannels)));
        }
        return list;
    }

    private static void Resnet(List<(string, TensorShape)> list, string prefix, int inChannels, int outChannels)
    {
        Norm(list, prefix + ".norm1", inChannels);
        Conv(list, prefix + ".conv1", inChannels, outChannels, ConvKernel);
        Norm(list, prefix + ".norm2", outChannels);
        Conv(list, prefix + ".conv2", outChannels, outChannels, ConvKernel);
        if (inChannels != outChannels) Conv(list, prefix + ".conv_shortcut", inChannels, outChannels, 1);
    }

    private static void MidBlock(List<(string, TensorShape)> list, string prefix, int channels, bool attention)
    {
        Resnet(list, prefix + ".resnets.0", channels, channels);
        if (attention)
        {
            string a = prefix + ".attentions.0";
            Norm(list, a + ".group_norm", channels);
            foreach (string projection in new[] { "to_q", "to_k", "to_v", "to_out.0" })
            {
                list.Add(($"{a}.{projection}.weight", new TensorShape(channels, channels)));
                list.Add(($"{a}.{projection}.bias", new TensorShape(channels)));
            }
        }
        Resnet(list, prefix + ".resnets.1", channels, channels);
    }

    private static void Conv(List<(string, TensorShape)> list, string prefix, int inChannels, int outChannels, int kernel)
    {
        list.Add((prefix + ".weight", new TensorShape(outChannels, inChannels, kernel, kernel)));
        list.Add((prefix + ".bias", new TensorShape(outChannels)));
    }

    private static void Norm(List<(string, TensorShape)> list, string prefix, int channels)
    {
        list.Add((prefix + ".weight", new TensorShape(channels)));
        list.Add((prefix + ".bias", new TensorShape(channels)));
    }
}
