using NativeVae.Models.QwenImage;
using NativeVae.Oracle.QwenImage;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace NativeVae.Oracle.Wan;

/// <summary>
/// diffusers' <c>AutoencoderKLWan</c> (Wan 2.1, and Wan 2.2's residual blocks, patchify and unpatchify with
/// <c>is_residual</c>) on video <c>[B, C, T, H, W]</c> as its
/// <c>_encode</c> and <c>_decode</c> run it, rebuilt from libtorch ops in fp32 and kept to diffusers' control flow on
/// purpose: chunks [0], [1:5], [5:9], ... (trailing frames dropped), one latent frame at a time on the way back, one
/// <c>feat_cache</c> list indexed by <c>feat_idx</c> in call order, CACHE_T = 2 with "the last frame of the last two
/// chunks", the temporal resamples' "Rep" and first-chunk rules, and the clamp. NativeVae runs frames one at a time
/// through 2D convs per temporal tap instead; these fixtures test that it is the same function.
/// </summary>
internal sealed class WanVideoOracle(QwenImageConfig config, CheckedWeights weights)
{
    private const int Kernel = 3;
    private const int CacheT = 2;
    private const int Chunk = 4;
    private static readonly object Rep = new();

    private readonly QwenImageOracle _layers = new(config, weights, (_, _) => { });
    private readonly List<object?> _cache = [];
    private int _idx;

    /// <summary>Video <c>[B, 3, T, H, W]</c> to moments <c>[B, 2z, T', h, w]</c> (after quant_conv).</summary>
    public Tensor EncodeMoments(Tensor x)
    {
        if (config.PatchSize > 1) x = WanShuffles.Patchify(x, config.PatchSize);
        long frames = x.shape[2];
        _cache.Clear();
        Tensor? result = null;
        long chunks = 1 + (frames - 1) / Chunk;
        for (long i = 0; i < chunks; i++)
        {
            _idx = 0;
            var chunk = i == 0 ? x.narrow(2, 0, 1) : x.narrow(2, 1 + Chunk * (i - 1), Chunk);
            var h = Encoder(chunk);
            result = result is null ? h : cat([result, h], 2);
        }
        return CausalConv(result!, "quant_conv", 2 * config.ZDim, 2 * config.ZDim, 1, null);
    }

    /// <summary>Latent <c>[B, z, T', h, w]</c> to the clamped video <c>[B, 3, T, H, W]</c>.</summary>
    public Tensor Decode(Tensor z)
    {
        _cache.Clear();
        var x = CausalConv(z, "post_quant_conv", config.ZDim, config.ZDim, 1, null);
        Tensor? result = null;
        for (long i = 0; i < z.shape[2]; i++)
        {
            _idx = 0;
            var frames = Decoder(x.narrow(2, i, 1), firstChunk: i == 0);
            result = result is null ? frames : cat([result, frames], 2);
        }
        if (config.PatchSize > 1) result = WanShuffles.Unpatchify(result!, config.PatchSize);
        return result!.clamp(-1.0, 1.0);
    }

    private Tensor Encoder(Tensor x)
    {
        var dims = config.EncoderDims;
        var h = CachedConv(x, "encoder.conv_in", config.PatchChannels, dims[0]);
        int k = 0;
        for (int i = 0; i < config.DimMult.Count; i++)
        {
            if (config.IsResidual)
            {
                h = ResidualDownBlock(h, i);
                continue;
            }
            int inDim = dims[i], outDim = dims[i + 1];
            for (int j = 0; j < config.NumResBlocks; j++)
            {
                h = Residual(h, $"encoder.down_blocks.{k++}", inDim, outDim);
                inDim = outDim;
            }
            if (i < config.DimMult.Count - 1) h = Downsample(h, $"encoder.down_blocks.{k++}", outDim, config.TemporalDownsample[i]);
        }
        h = MidBlock(h, "encoder.mid_block", dims[^1]);
        return CachedConv(F.silu(_layers.RmsNorm(h, "encoder.norm_out", dims[^1], images: false)), "encoder.conv_out", dims[^1], 2 * config.ZDim);
    }

    private Tensor Decoder(Tensor x, bool firstChunk)
    {
        var up = config.DecoderDims;
        var h = CachedConv(x, "decoder.conv_in", config.ZDim, up[0]);
        h = MidBlock(h, "decoder.mid_block", up[0]);
        for (int i = 0; i < config.DimMult.Count; i++)
        {
            if (config.IsResidual)
            {
                h = ResidualUpBlock(h, i, firstChunk);
                continue;
            }
            int inDim = i > 0 ? up[i] / 2 : up[i], outDim = up[i + 1];
            for (int j = 0; j <= config.NumResBlocks; j++)
            {
                h = Residual(h, $"decoder.up_blocks.{i}.resnets.{j}", inDim, outDim);
                inDim = outDim;
            }
            if (i < config.DimMult.Count - 1) h = Upsample(h, $"decoder.up_blocks.{i}.upsamplers.0", outDim, config.TemporalUpsample[i]);
        }
        return CachedConv(F.silu(_layers.RmsNorm(h, "decoder.norm_out", up[^1], images: false)), "decoder.conv_out", up[^1], config.PatchChannels);
    }

    // WanResidualDownBlock: x_copy, the resnets, the downsampler (but on the last level; temporal as
    // temperal_downsample[i] but on the last), plus AvgDown3D(x_copy) (2x2 but on the last level, 2 frames when temporal).
    private Tensor ResidualDownBlock(Tensor x, int level)
    {
        var dims = config.EncoderDims;
        string prefix = $"encoder.down_blocks.{level}";
        bool last = level == config.DimMult.Count - 1, temporal = !last && config.TemporalDownsample[level];
        var copy = x.clone();
        int inDim = dims[level], outDim = dims[level + 1];
        for (int j = 0; j < config.NumResBlocks; j++)
        {
            x = Residual(x, $"{prefix}.resnets.{j}", inDim, outDim);
            inDim = outDim;
        }
        if (!last) x = Downsample(x, prefix + ".downsampler", outDim, temporal);
        return x + WanShuffles.AvgDown3D(copy, outDim, temporal ? 2 : 1, last ? 1 : 2);
    }

    // WanResidualUpBlock: x_copy, num_res_blocks + 1 resnets, the upsampler keeping its channels (but on the last
    // level), plus DupUp3D(x_copy, first_chunk) where it upsamples.
    private Tensor ResidualUpBlock(Tensor x, int level, bool firstChunk)
    {
        var up = config.DecoderDims;
        string prefix = $"decoder.up_blocks.{level}";
        bool upsamples = level < config.DimMult.Count - 1, temporal = upsamples && config.TemporalUpsample[level];
        var copy = x.clone();
        int inDim = up[level], outDim = up[level + 1];
        for (int j = 0; j <= config.NumResBlocks; j++)
        {
            x = Residual(x, $"{prefix}.resnets.{j}", inDim, outDim);
            inDim = outDim;
        }
        if (!upsamples) return x;
        x = Upsample(x, prefix + ".upsampler", outDim, temporal);
        return x + WanShuffles.DupUp3D(copy, outDim, temporal ? 2 : 1, 2, firstChunk);
    }

    // WanResidualBlock: shortcut (uncached 1x1x1), norm1, SiLU, cached conv1, norm2, SiLU, cached conv2, + shortcut.
    private Tensor Residual(Tensor x, string prefix, int inDim, int outDim)
    {
        var shortcut = inDim != outDim ? CausalConv(x, prefix + ".conv_shortcut", inDim, outDim, 1, null) : x;
        var h = CachedConv(F.silu(_layers.RmsNorm(x, prefix + ".norm1", inDim, images: false)), prefix + ".conv1", inDim, outDim);
        h = CachedConv(F.silu(_layers.RmsNorm(h, prefix + ".norm2", outDim, images: false)), prefix + ".conv2", outDim, outDim);
        return h + shortcut;
    }

    private Tensor MidBlock(Tensor x, string prefix, int dim)
    {
        var h = Residual(x, prefix + ".resnets.0", dim, dim);
        h = _layers.Attention(h, prefix + ".attentions.0", dim);
        return Residual(h, prefix + ".resnets.1", dim, dim);
    }

    // WanResample downsample2d/3d: per frame ZeroPad2d((0, 1, 0, 1)) and a 3x3 stride-2 conv; then on a temporal level
    // the first chunk is cached whole, and later ones run time_conv (stride 2, no padding) on the cached last frame
    // and the chunk, caching the chunk's last frame.
    private Tensor Downsample(Tensor x, string prefix, int dim, bool temporal)
    {
        var h = QwenImageOracle.PerFrame(x, f => F.conv2d(F.pad(f, [0, 1, 0, 1]), _layers.Weight2d(prefix + ".resample.1", dim, dim),
            weights.Get(prefix + ".resample.1.bias", dim), strides: [2, 2]));
        if (!temporal) return h;
        int idx = _idx++;
        while (_cache.Count <= idx) _cache.Add(null);
        if (_cache[idx] is null)
        {
            _cache[idx] = h.clone();
            return h;
        }
        var last = ((Tensor)_cache[idx]!).narrow(2, ((Tensor)_cache[idx]!).shape[2] - 1, 1);
        var cacheX = h.narrow(2, h.shape[2] - 1, 1).clone();
        var y = F.conv3d(cat([last, h], 2), TimeWeight(prefix, dim, dim), weights.Get(prefix + ".time_conv.bias", dim), strides: [2, 1, 1]);
        _cache[idx] = cacheX;
        return y;
    }

    // WanResample upsample2d/3d: on a temporal level, the first chunk only marks "Rep"; later ones run the causal
    // time_conv (C to 2C) with the cache (zeros in front of a "Rep"), interleave its halves in time; then per frame
    // nearest 2x and a 3x3 conv to half the channels.
    private Tensor Upsample(Tensor x, string prefix, int dim, bool temporal)
    {
        long b = x.shape[0], c = x.shape[1], t = x.shape[2], height = x.shape[3], width = x.shape[4];
        if (temporal)
        {
            int idx = _idx;
            while (_cache.Count <= idx) _cache.Add(null);
            if (_cache[idx] is null)
            {
                _cache[idx] = Rep;
                _idx++;
            }
            else
            {
                var cacheX = x.narrow(2, Math.Max(0, t - CacheT), Math.Min(CacheT, t)).clone();
                if (cacheX.shape[2] < 2 && _cache[idx] is Tensor previous)
                    cacheX = cat([previous.narrow(2, previous.shape[2] - 1, 1), cacheX], 2);
                if (cacheX.shape[2] < 2 && _cache[idx] == Rep)
                    cacheX = cat([zeros_like(cacheX), cacheX], 2);
                var y = _cache[idx] == Rep
                    ? CausalConv(x, prefix + ".time_conv", dim, 2 * dim, Kernel, null, timeOnly: true)
                    : CausalConv(x, prefix + ".time_conv", dim, 2 * dim, Kernel, (Tensor)_cache[idx]!, timeOnly: true);
                _cache[idx] = cacheX;
                _idx++;
                y = y.reshape(b, 2, c, t, height, width);
                x = stack([y.select(1, 0), y.select(1, 1)], 3).reshape(b, c, t * 2, height, width);
            }
        }
        string conv = prefix + ".resample.1";
        int outDim = config.UpsampleOutput(dim);
        return QwenImageOracle.PerFrame(x, f => F.conv2d(F.interpolate(f, scale_factor: [2.0, 2.0], mode: InterpolationMode.Nearest),
            _layers.Weight2d(conv, dim, outDim), weights.Get(conv + ".bias", outDim), padding: [1, 1]));
    }

    // The cached-conv pattern of every WanCausalConv3d call site: cache the input's last CACHE_T frames (with the
    // previous cache's last frame in front when the chunk has one), run the conv with the previous cache.
    private Tensor CachedConv(Tensor x, string prefix, int inDim, int outDim)
    {
        int idx = _idx++;
        while (_cache.Count <= idx) _cache.Add(null);
        long t = x.shape[2];
        var cacheX = x.narrow(2, Math.Max(0, t - CacheT), Math.Min(CacheT, t)).clone();
        if (cacheX.shape[2] < 2 && _cache[idx] is Tensor previous)
            cacheX = cat([previous.narrow(2, previous.shape[2] - 1, 1), cacheX], 2);
        var y = CausalConv(x, prefix, inDim, outDim, Kernel, _cache[idx] as Tensor);
        _cache[idx] = cacheX;
        return y;
    }

    // WanCausalConv3d.forward: padding (p, p, p, p, 2p, 0) less the cached frames put in front.
    private Tensor CausalConv(Tensor x, string prefix, int inDim, int outDim, int kernel, Tensor? cacheX, bool timeOnly = false)
    {
        int p = kernel / 2, spatialPad = timeOnly ? 0 : p;
        long front = 2 * p;
        if (cacheX is not null && front > 0)
        {
            x = cat([cacheX, x], 2);
            front -= cacheX.shape[2];
        }
        var weight = timeOnly ? TimeWeight(prefix[..^".time_conv".Length], inDim, outDim)
            : weights.Get(prefix + ".weight", outDim, inDim, kernel, kernel, kernel);
        return F.conv3d(F.pad(x, [spatialPad, spatialPad, spatialPad, spatialPad, front, 0]), weight, weights.Get(prefix + ".bias", outDim));
    }

    private Tensor TimeWeight(string prefix, int inDim, int outDim) => weights.Get(prefix + ".time_conv.weight", outDim, inDim, Kernel, 1, 1);
}
