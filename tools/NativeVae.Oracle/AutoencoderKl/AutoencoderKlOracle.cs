using System.Globalization;
using NativeVae.Models.AutoencoderKl;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.AutoencoderKl;

/// <summary>
/// diffusers' <c>AutoencoderKL</c> (models/autoencoders/autoencoder_kl.py) rebuilt from libtorch ops only, in fp32,
/// with the parameter names of the diffusers state dict. Each method ports one diffusers module and says which.
/// Named intermediates are reported through the capture callback so the fixtures can pin every stage; the callback
/// must copy what it keeps, because each intermediate is freed as soon as it is dead (<see cref="Then"/>), as PyTorch
/// frees a tensor when its last reference goes. Without that, TorchSharp would hold every intermediate of a pass
/// until its dispose scope ends, and PeerBench would compare NativeVae's memory with a libtorch that no PyTorch user sees.
/// </summary>
internal sealed class AutoencoderKlOracle
{
    private const int ConvKernel = 3;

    /// <summary>diffusers' <c>ResnetBlock2D.output_scale_factor</c> and <c>Attention.rescale_output_factor</c> for the VAE.</summary>
    private const double OutputScaleFactor = 1.0;

    private readonly AutoencoderKlConfig _config;
    private readonly CheckedWeights _weights;
    private readonly Action<string, Tensor> _capture;

    public AutoencoderKlOracle(AutoencoderKlConfig config, CheckedWeights weights, Action<string, Tensor> capture)
    {
        config.Validate();
        _config = config;
        _weights = weights;
        _capture = capture;
    }

    /// <summary>The config's epsilon as the decimal diffusers writes (1e-6), not the float's binary neighbour.</summary>
    private double Eps => double.Parse(FixtureFile.Format(_config.NormEps), CultureInfo.InvariantCulture);

    private int Groups => _config.NormNumGroups;

    /// <summary>
    /// diffusers: <c>AutoencoderKL.encode</c> up to the moments (mean and logvar stacked on channels), before
    /// <c>DiagonalGaussianDistribution</c>. image <c>[N, in, H, W]</c> -> <c>[N, 2*latent, H/f, W/f]</c>.
    /// </summary>
    public Tensor EncodeMoments(Tensor image)
    {
        var h = Encoder(image);
        var moments = _config.UseQuantConv
            ? Then(h, Conv(h, "quant_conv", 2 * _config.LatentChannels, 2 * _config.LatentChannels, kernel: 1, padding: 0))
            : h;
        _capture("moments", moments);
        return moments;
    }

    /// <summary>diffusers: <c>AutoencoderKL._decode</c>. latent <c>[N, latent, h, w]</c> -> sample <c>[N, out, h*f, w*f]</c>.</summary>
    public Tensor Decode(Tensor latent)
    {
        var z = latent;
        if (_config.UsePostQuantConv)
        {
            z = Conv(z, "post_quant_conv", _config.LatentChannels, _config.LatentChannels, kernel: 1, padding: 0);
            _capture("post_quant_conv", z);
        }
        return Decoder(z);
    }

    // diffusers: vae.Encoder (double_z = True, mid_block_add_attention from the config).
    private Tensor Encoder(Tensor x)
    {
        var ch = _config.BlockOutChannels;
        var h = Conv(x, "encoder.conv_in", _config.InChannels, ch[0]);               // [N, ch0, H, W]
        _capture("encoder.conv_in", h);
        int previous = ch[0];
        for (int i = 0; i < ch.Count; i++)
        {
            // diffusers: DownEncoderBlock2D
            string block = $"encoder.down_blocks.{i}";
            for (int j = 0; j < _config.LayersPerBlock; j++)
                h = Then(h, ResnetBlock2D(h, $"{block}.resnets.{j}", j == 0 ? previous : ch[i], ch[i]));
            if (i < ch.Count - 1) h = Then(h, Downsample2D(h, $"{block}.downsamplers.0", ch[i]));   // [N, ch_i, H/2, W/2]
            _capture(block, h);
            previous = ch[i];
        }
        h = Then(h, UNetMidBlock2D(h, "encoder.mid_block", ch[^1]));
        _capture("encoder.mid_block", h);
        h = Then(h, GroupNorm(h, "encoder.conv_norm_out", ch[^1]));
        h = Then(h, F.silu(h));
        h = Then(h, Conv(h, "encoder.conv_out", ch[^1], 2 * _config.LatentChannels));        // [N, 2*latent, h, w]
        _capture("encoder.conv_out", h);
        return h;
    }

    // diffusers: vae.Decoder (AutoencoderKLFlux2 passes decoder_block_out_channels or block_out_channels).
    private Tensor Decoder(Tensor z)
    {
        var ch = _config.DecoderChannels;
        var h = Conv(z, "decoder.conv_in", _config.LatentChannels, ch[^1]);           // [N, ch_last, h, w]
        _capture("decoder.conv_in", h);
        h = Then(h, UNetMidBlock2D(h, "decoder.mid_block", ch[^1]));
        _capture("decoder.mid_block", h);
        int previous = ch[^1];
        for (int i = 0; i < ch.Count; i++)
        {
            // diffusers: UpDecoderBlock2D over the reversed block_out_channels, one resnet more than the encoder.
            int output = ch[ch.Count - 1 - i];
            string block = $"decoder.up_blocks.{i}";
            for (int j = 0; j < _config.LayersPerBlock + 1; j++)
                h = Then(h, ResnetBlock2D(h, $"{block}.resnets.{j}", j == 0 ? previous : output, output));
            if (i < ch.Count - 1) h = Then(h, Upsample2D(h, $"{block}.upsamplers.0", output));      // [N, out, 2h, 2w]
            _capture(block, h);
            previous = output;
        }
        h = Then(h, GroupNorm(h, "decoder.conv_norm_out", ch[0]));
        h = Then(h, F.silu(h));
        h = Then(h, Conv(h, "decoder.conv_out", ch[0], _config.OutChannels));                   // [N, out, H, W]
        _capture("decoder.conv_out", h);
        return h;
    }

    // diffusers: unet_2d_blocks.UNetMidBlock2D with one layer: resnet, attention, resnet (temb None).
    private Tensor UNetMidBlock2D(Tensor x, string prefix, int channels)
    {
        var h = ResnetBlock2D(x, $"{prefix}.resnets.0", channels, channels);
        if (_config.MidBlockAddAttention) h = Then(h, Attention(h, $"{prefix}.attentions.0", channels));
        return Then(h, ResnetBlock2D(h, $"{prefix}.resnets.1", channels, channels));
    }

    // diffusers: resnet.ResnetBlock2D (pre-norm, temb None, dropout inactive in eval).
    private Tensor ResnetBlock2D(Tensor x, string prefix, int inChannels, int outChannels)
    {
        var h = GroupNorm(x, $"{prefix}.norm1", inChannels);
        h = Then(h, F.silu(h));
        h = Then(h, Conv(h, $"{prefix}.conv1", inChannels, outChannels));
        h = Then(h, GroupNorm(h, $"{prefix}.norm2", outChannels));
        h = Then(h, F.silu(h));
        h = Then(h, Conv(h, $"{prefix}.conv2", outChannels, outChannels));
        var shortcut = inChannels != outChannels
            ? Conv(x, $"{prefix}.conv_shortcut", inChannels, outChannels, kernel: 1, padding: 0)
            : x;
        var sum = Then(h, shortcut + h);
        if (!ReferenceEquals(shortcut, x)) shortcut.Dispose();
        return Then(sum, sum / OutputScaleFactor);
    }

    // diffusers: attention_processor.Attention with AttnProcessor2_0, as the VAE builds it: group_norm on the
    // input, heads = channels / attention_head_dim = 1, residual_connection, bias on all projections.
    private Tensor Attention(Tensor x, string prefix, int channels)
    {
        long n = x.shape[0], height = x.shape[2], width = x.shape[3];
        var h = GroupNorm(x, $"{prefix}.group_norm", channels);
        h = Then(h, h.reshape(n, channels, height * width).transpose(1, 2));              // [N, HW, C]
        var q = View(Linear(h, $"{prefix}.to_q", channels), t => t.unsqueeze(1));    // [N, 1, HW, C]
        var k = View(Linear(h, $"{prefix}.to_k", channels), t => t.unsqueeze(1));
        var v = View(Linear(h, $"{prefix}.to_v", channels), t => t.unsqueeze(1));
        h.Dispose();
        // Default scale 1/sqrt(head_dim) = 1/sqrt(C): the VAE's single head spans all channels.
        var attended = View(F.scaled_dot_product_attention(q, k, v), t => t.squeeze(1));     // [N, HW, C]
        q.Dispose();
        k.Dispose();
        v.Dispose();
        var projected = Then(attended, Linear(attended, $"{prefix}.to_out.0", channels));  // to_out.1 is dropout
        var back = Then(projected, projected.transpose(1, 2).reshape(n, channels, height, width)); // [N, C, H, W]
        var sum = Then(back, back + x);
        return Then(sum, sum / OutputScaleFactor);
    }

    // diffusers: downsampling.Downsample2D(use_conv=True, padding=0): zero pad right and bottom, 3x3 stride 2.
    private Tensor Downsample2D(Tensor x, string prefix, int channels)
    {
        var padded = F.pad(x, [0, 1, 0, 1]);                                              // (left, right, top, bottom)
        return Then(padded, Conv(padded, $"{prefix}.conv", channels, channels, stride: 2, padding: 0));
    }

    // diffusers: upsampling.Upsample2D(use_conv=True): nearest 2x, then 3x3 pad 1.
    private Tensor Upsample2D(Tensor x, string prefix, int channels)
    {
        var upsampled = F.interpolate(x, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest);
        return Then(upsampled, Conv(upsampled, $"{prefix}.conv", channels, channels));
    }

    /// <summary>Frees <paramref name="dead"/>, an intermediate whose last use was computing <paramref name="next"/>;
    /// returns <paramref name="next"/>. A view keeps its storage alive, so freeing the handle of a viewed tensor is safe.</summary>
    private static Tensor Then(Tensor dead, Tensor next)
    {
        if (!ReferenceEquals(dead, next)) dead.Dispose();
        return next;
    }

    /// <summary>Applies a view to a fresh tensor and frees the fresh tensor's handle (the view keeps the storage).</summary>
    private static Tensor View(Tensor fresh, Func<Tensor, Tensor> makeView) => Then(fresh, makeView(fresh));

    private Tensor Conv(Tensor x, string prefix, int inChannels, int outChannels, int kernel = ConvKernel, int stride = 1, int padding = 1)
    {
        var weight = _weights.Get($"{prefix}.weight", outChannels, inChannels, kernel, kernel);
        var bias = _weights.Get($"{prefix}.bias", outChannels);
        return F.conv2d(x, weight, bias, strides: [stride, stride], padding: [padding, padding]);
    }

    private Tensor GroupNorm(Tensor x, string prefix, int channels)
    {
        var gamma = _weights.Get($"{prefix}.weight", channels);
        var beta = _weights.Get($"{prefix}.bias", channels);
        return F.group_norm(x, Groups, gamma, beta, Eps);
    }

    private Tensor Linear(Tensor x, string prefix, int channels)
    {
        var weight = _weights.Get($"{prefix}.weight", channels, channels);
        var bias = _weights.Get($"{prefix}.bias", channels);
        return F.linear(x, weight, bias);
    }
}
