using NativeVae.Models.QwenImage;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.QwenImage;

/// <summary>
/// diffusers' <c>AutoencoderKLQwenImage</c> (models/autoencoders/autoencoder_kl_qwenimage.py) rebuilt from libtorch
/// ops in fp32, on 5-D video tensors <c>[B, C, T, H, W]</c>, for the first chunk that <c>_encode</c> and
/// <c>_decode</c> run (all of a one-frame input): every causal conv pads 2p zero frames in front (its feature cache
/// is empty), the temporal resamples store their input and skip <c>time_conv</c> ("Rep" on the way up), attention
/// runs per frame. It is deliberately the 3D network, not the 2D one NativeVae derives from it: a test of that
/// derivation. Named stages are reported with the frame axis squeezed out.
/// </summary>
internal sealed class QwenImageOracle(QwenImageConfig config, CheckedWeights weights, Action<string, Tensor> capture)
{
    private const int Kernel = 3;

    /// <summary>Image <c>[B, 3, 1, H, W]</c> to moments <c>[B, 2z, 1, h, w]</c> (after quant_conv).</summary>
    public Tensor EncodeMoments(Tensor x)
    {
        var dims = config.EncoderDims;
        var h = CausalConv(x, "encoder.conv_in", config.InputChannels, dims[0], Kernel);
        Capture("encoder.conv_in", h);
        int k = 0;
        for (int i = 0; i < config.DimMult.Count; i++)
        {
            int inDim = dims[i], outDim = dims[i + 1];
            for (int j = 0; j < config.NumResBlocks; j++)
            {
                h = Residual(h, $"encoder.down_blocks.{k}", inDim, outDim);
                Capture($"encoder.down_blocks.{k++}", h);
                inDim = outDim;
            }
            if (i == config.DimMult.Count - 1) continue;
            // QwenImageResample downsample2d/3d: per frame ZeroPad2d((0, 1, 0, 1)) and a 3x3 stride-2 conv; the
            // first chunk only caches for time_conv.
            h = PerFrame(h, f => F.conv2d(F.pad(f, [0, 1, 0, 1]), Weight2d($"encoder.down_blocks.{k}.resample.1", outDim, outDim),
                weights.Get($"encoder.down_blocks.{k}.resample.1.bias", outDim), strides: [2, 2]));
            Capture($"encoder.down_blocks.{k++}", h);
        }
        h = MidBlock(h, "encoder.mid_block", dims[^1]);
        Capture("encoder.mid_block", h);
        h = CausalConv(F.silu(RmsNorm(h, "encoder.norm_out", dims[^1], images: false)), "encoder.conv_out", dims[^1], 2 * config.ZDim, Kernel);
        Capture("encoder.conv_out", h);
        var moments = CausalConv(h, "quant_conv", 2 * config.ZDim, 2 * config.ZDim, 1);
        Capture("moments", moments);
        return moments;
    }

    /// <summary>Latent <c>[B, z, 1, h, w]</c> to the clamped image <c>[B, 3, 1, H, W]</c>.</summary>
    public Tensor Decode(Tensor z)
    {
        var up = config.DecoderDims;
        var h = CausalConv(z, "post_quant_conv", config.ZDim, config.ZDim, 1);
        Capture("post_quant_conv", h);
        h = CausalConv(h, "decoder.conv_in", config.ZDim, up[0], Kernel);
        Capture("decoder.conv_in", h);
        h = MidBlock(h, "decoder.mid_block", up[0]);
        Capture("decoder.mid_block", h);
        for (int i = 0; i < config.DimMult.Count; i++)
        {
            int inDim = i > 0 ? up[i] / 2 : up[i], outDim = up[i + 1];
            for (int j = 0; j <= config.NumResBlocks; j++)
            {
                h = Residual(h, $"decoder.up_blocks.{i}.resnets.{j}", inDim, outDim);
                inDim = outDim;
            }
            if (i < config.DimMult.Count - 1)
            {
                // QwenImageResample upsample2d/3d: time_conv skipped on the first chunk; per frame nearest-exact 2x
                // (nearest at an integer scale) and a 3x3 conv to half the channels.
                string prefix = $"decoder.up_blocks.{i}.upsamplers.0.resample.1";
                h = PerFrame(h, f => F.conv2d(F.interpolate(f, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest),
                    Weight2d(prefix, outDim, outDim / 2), weights.Get(prefix + ".bias", outDim / 2), padding: [1, 1]));
            }
            Capture($"decoder.up_blocks.{i}", h);
        }
        h = CausalConv(F.silu(RmsNorm(h, "decoder.norm_out", up[^1], images: false)), "decoder.conv_out", up[^1], config.InputChannels, Kernel);
        Capture("decoder.conv_out", h);
        var sample = h.clamp(-1.0, 1.0);
        Capture("sample", sample);
        return sample;
    }

    // QwenImageResidualBlock: shortcut of the input, then norm1, SiLU, conv1, norm2, SiLU, (dropout), conv2.
    private Tensor Residual(Tensor x, string prefix, int inDim, int outDim)
    {
        var shortcut = inDim != outDim ? CausalConv(x, prefix + ".conv_shortcut", inDim, outDim, 1) : x;
        var h = CausalConv(F.silu(RmsNorm(x, prefix + ".norm1", inDim, images: false)), prefix + ".conv1", inDim, outDim, Kernel);
        h = CausalConv(F.silu(RmsNorm(h, prefix + ".norm2", outDim, images: false)), prefix + ".conv2", outDim, outDim, Kernel);
        return h + shortcut;
    }

    // QwenImageMidBlock(num_layers=1): resnet, attention, resnet.
    private Tensor MidBlock(Tensor x, string prefix, int dim)
    {
        var h = Residual(x, prefix + ".resnets.0", dim, dim);
        h = Attention(h, prefix + ".attentions.0", dim);
        return Residual(h, prefix + ".resnets.1", dim, dim);
    }

    // QwenImageAttentionBlock: per frame, RMS norm (gamma [C, 1, 1]), fused to_qkv, one head, proj, + identity.
    internal Tensor Attention(Tensor x, string prefix, int dim)
    {
        long b = x.shape[0], t = x.shape[2], height = x.shape[3], width = x.shape[4];
        var frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, dim, height, width);
        var normed = RmsNorm(frames, prefix + ".norm", dim, images: true);
        var qkv = F.conv2d(normed, weights.Get(prefix + ".to_qkv.weight", 3 * dim, dim, 1, 1), weights.Get(prefix + ".to_qkv.bias", 3 * dim));
        qkv = qkv.reshape(b * t, 1, 3 * dim, -1).permute(0, 1, 3, 2).contiguous();
        var parts = qkv.chunk(3, dim: -1);
        var attended = F.scaled_dot_product_attention(parts[0], parts[1], parts[2]);
        attended = attended.squeeze(1).permute(0, 2, 1).reshape(b * t, dim, height, width);
        var projected = F.conv2d(attended, weights.Get(prefix + ".proj.weight", dim, dim, 1, 1), weights.Get(prefix + ".proj.bias", dim));
        return projected.view(b, t, dim, height, width).permute(0, 2, 1, 3, 4) + x;
    }

    // QwenImageRMS_norm: F.normalize over channels, * dim ** 0.5 * gamma (no bias).
    internal Tensor RmsNorm(Tensor x, string prefix, int dim, bool images)
    {
        var gamma = images ? weights.Get(prefix + ".gamma", dim, 1, 1) : weights.Get(prefix + ".gamma", dim, 1, 1, 1);
        return F.normalize(x, dim: 1) * Math.Sqrt(dim) * gamma;
    }

    // QwenImageCausalConv3d with an empty cache: pad (p, p, p, p, 2p, 0), then conv3d without padding.
    private Tensor CausalConv(Tensor x, string prefix, int inDim, int outDim, int kernel)
    {
        int p = kernel / 2;
        var weight = weights.Get(prefix + ".weight", outDim, inDim, kernel, kernel, kernel);
        var bias = weights.Get(prefix + ".bias", outDim);
        return F.conv3d(F.pad(x, [p, p, p, p, 2 * p, 0]), weight, bias);
    }

    internal Tensor Weight2d(string prefix, int inDim, int outDim) => weights.Get(prefix + ".weight", outDim, inDim, Kernel, Kernel);

    /// <summary>A 2D op on each frame: <c>[B, C, T, H, W]</c> through <c>[B*T, C, H, W]</c> and back.</summary>
    internal static Tensor PerFrame(Tensor x, Func<Tensor, Tensor> op)
    {
        long b = x.shape[0], c = x.shape[1], t = x.shape[2];
        var y = op(x.permute(0, 2, 1, 3, 4).reshape(b * t, c, x.shape[3], x.shape[4]));
        return y.view(b, t, y.shape[1], y.shape[2], y.shape[3]).permute(0, 2, 1, 3, 4);
    }

    private void Capture(string name, Tensor x) => capture(name, x.squeeze(2));
}
