namespace NativeVae.Models.QwenImage;

/// <summary>
/// Every parameter of diffusers' <c>AutoencoderKLQwenImage</c> for a config: its diffusers name and shape, the causal
/// 3D convs as 5-D <c>[out, in, t, h, w]</c> weights and the norms' gammas as <c>[C, 1, 1(, 1)]</c>, exactly as a
/// diffusers state dict holds them. The time-only convs of the temporal resamples are listed too: a file has them,
/// though one frame never reaches them (<see cref="WanWeightView"/>).
/// </summary>
internal static class QwenImageParameters
{
    private const int Kernel = 3;

    public static List<(string Name, TensorShape Shape)> Enumerate(QwenImageConfig config)
    {
        config.Validate();
        var list = new List<(string, TensorShape)>();
        int z = config.ZDim;

        var dims = config.EncoderDims;
        Conv3d(list, "encoder.conv_in", config.PatchChannels, dims[0], Kernel);
        int k = 0;
        for (int i = 0; i < config.DimMult.Count; i++)
        {
            int inDim = dims[i], outDim = dims[i + 1];
            // Wan 2.1 lists each level's blocks flat; Wan 2.2 nests them in one residual down block per level.
            string block = config.IsResidual ? $"encoder.down_blocks.{i}" : "";
            for (int j = 0; j < config.NumResBlocks; j++)
            {
                Residual(list, config.IsResidual ? $"{block}.resnets.{j}" : $"encoder.down_blocks.{k++}", inDim, outDim);
                inDim = outDim;
            }
            if (i < config.DimMult.Count - 1)
                Resample(list, config.IsResidual ? $"{block}.downsampler" : $"encoder.down_blocks.{k++}", outDim, outDim, config.DownsamplesTime(i) ? outDim : 0);
        }
        MidBlock(list, "encoder.mid_block", dims[^1]);
        Gamma3d(list, "encoder.norm_out", dims[^1]);
        Conv3d(list, "encoder.conv_out", dims[^1], 2 * z, Kernel);
        Conv3d(list, "quant_conv", 2 * z, 2 * z, 1);

        Conv3d(list, "post_quant_conv", z, z, 1);
        var up = config.DecoderDims;
        Conv3d(list, "decoder.conv_in", z, up[0], Kernel);
        MidBlock(list, "decoder.mid_block", up[0]);
        for (int i = 0; i < config.DimMult.Count; i++)
        {
            int inDim = config.DecoderLevelInput(i), outDim = up[i + 1];
            for (int j = 0; j <= config.NumResBlocks; j++)
            {
                Residual(list, $"decoder.up_blocks.{i}.resnets.{j}", inDim, outDim);
                inDim = outDim;
            }
            if (i < config.DimMult.Count - 1)
                Resample(list, $"decoder.up_blocks.{i}.{UpsamplerName(config)}", outDim, config.UpsampleOutput(outDim), config.TemporalUpsample[i] ? 2 * outDim : 0);
        }
        Gamma3d(list, "decoder.norm_out", up[^1]);
        Conv3d(list, "decoder.conv_out", up[^1], config.PatchChannels, Kernel);
        return list;
    }

    /// <summary>An up block's upsampler: Wan 2.1's <c>upsamplers.0</c> (a list), Wan 2.2's residual block's <c>upsampler</c>.</summary>
    public static string UpsamplerName(QwenImageConfig config) => config.IsResidual ? "upsampler" : "upsamplers.0";

    /// <summary>QwenImageResidualBlock: RMS norms over [C, 1, 1, 1], causal 3x3x3 convs, a 1x1x1 shortcut when the channels change.</summary>
    private static void Residual(List<(string, TensorShape)> list, string prefix, int inDim, int outDim)
    {
        Gamma3d(list, prefix + ".norm1", inDim);
        Conv3d(list, prefix + ".conv1", inDim, outDim, Kernel);
        Gamma3d(list, prefix + ".norm2", outDim);
        Conv3d(list, prefix + ".conv2", outDim, outDim, Kernel);
        if (inDim != outDim) Conv3d(list, prefix + ".conv_shortcut", inDim, outDim, 1);
    }

    /// <summary>
    /// QwenImageResample: its 2D conv is <c>resample.1</c> (after the ZeroPad2d or Upsample at index 0), and a
    /// temporal one has a causal (3, 1, 1) <c>time_conv</c> of <paramref name="timeOut"/> channels (0: none).
    /// </summary>
    private static void Resample(List<(string, TensorShape)> list, string prefix, int inDim, int outDim, int timeOut)
    {
        list.Add(($"{prefix}.resample.1.weight", new TensorShape(outDim, inDim, Kernel, Kernel)));
        list.Add(($"{prefix}.resample.1.bias", new TensorShape(outDim)));
        if (timeOut == 0) return;
        list.Add(($"{prefix}.time_conv.weight", new TensorShape(timeOut, inDim, Kernel, 1, 1)));
        list.Add(($"{prefix}.time_conv.bias", new TensorShape(timeOut)));
    }

    /// <summary>QwenImageMidBlock: resnet, attention (RMS norm over [C, 1, 1], a fused 1x1 to_qkv, a 1x1 proj), resnet.</summary>
    private static void MidBlock(List<(string, TensorShape)> list, string prefix, int dim)
    {
        Residual(list, prefix + ".resnets.0", dim, dim);
        string a = prefix + ".attentions.0";
        list.Add(($"{a}.norm.gamma", new TensorShape(dim, 1, 1)));
        list.Add(($"{a}.to_qkv.weight", new TensorShape(3 * dim, dim, 1, 1)));
        list.Add(($"{a}.to_qkv.bias", new TensorShape(3 * dim)));
        list.Add(($"{a}.proj.weight", new TensorShape(dim, dim, 1, 1)));
        list.Add(($"{a}.proj.bias", new TensorShape(dim)));
        Residual(list, prefix + ".resnets.1", dim, dim);
    }

    private static void Conv3d(List<(string, TensorShape)> list, string prefix, int inDim, int outDim, int kernel)
    {
        list.Add((prefix + ".weight", new TensorShape(outDim, inDim, kernel, kernel, kernel)));
        list.Add((prefix + ".bias", new TensorShape(outDim)));
    }

    private static void Gamma3d(List<(string, TensorShape)> list, string prefix, int dim) =>
        list.Add((prefix + ".gamma", new TensorShape(dim, 1, 1, 1)));
}
