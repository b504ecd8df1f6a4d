using ILGPU;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// GroupNorm for the tensor-core path's 16-bit NHWC activations. No kernel runs one block per (batch, group): the
// moments are taken per (batch, pixel tile, channel) by a thread each (consecutive threads read consecutive
// channels of a pixel: coalesced), GroupNormGpu.MergeTileMoments merges them into (mean, rstd) per group, and the
// normalisation is one thread per pair of channels over the whole tensor. Arithmetic is fp32; padded channels stay 0.

internal static class GroupNormNhwcGpu
{
    /// <summary>Pixels each moments thread reads: enough to amortise its launch, few enough to fill the GPU.</summary>
    public const int DefaultPixelsPerTile = 128;

    private const int ElementsPerWord = 2;

    /// <summary>bf16: moments [Batch, Tiles, ChannelStride, 3] = (count, mean, M2), one thread per (batch, tile, channel).</summary>
    [GpuKernel]
    internal static void TileMomentsBf16(Index1D index, GroupNormNhwcParams p, ArrayView<ushort> input, ArrayView<float> moments) =>
        TileMoments(default(Bf16Format), index, p, input, moments);

    /// <summary>fp16: as <see cref="TileMomentsBf16"/>.</summary>
    [GpuKernel]
    internal static void TileMomentsF16(Index1D index, GroupNormNhwcParams p, ArrayView<ushort> input, ArrayView<float> moments) =>
        TileMoments(default(F16Format), index, p, input, moments);

    /// <summary>bf16: y = (x - mean) * rstd * gamma + beta (then SiLU), one thread per word (two channels of a pixel).</summary>
    [GpuKernel]
    internal static void NormalizeBf16(Index1D index, GroupNormNhwcParams p, ArrayView<uint> input, ArrayView<float> gamma,
        ArrayView<float> beta, ArrayView<float> stats, ArrayView<uint> output) =>
        Normalize(default(Bf16Format), index, p, input, gamma, beta, stats, output);

    /// <summary>fp16: as <see cref="NormalizeBf16"/>.</summary>
    [GpuKernel]
    internal static void NormalizeF16(Index1D index, GroupNormNhwcParams p, ArrayView<uint> input, ArrayView<float> gamma,
        ArrayView<float> beta, ArrayView<float> stats, ArrayView<uint> output) =>
        Normalize(default(F16Format), index, p, input, gamma, beta, stats, output);

    private static void TileMoments<TFormat>(TFormat format, Index1D index, GroupNormNhwcParams p, ArrayView<ushort> input,
        ArrayView<float> moments) where TFormat : struct, IHalfFormat
    {
        int tiles = DeviceMath.CeilDiv(p.Pixels, p.PixelsPerTile);
        int thread = index;
        if (thread >= p.Batch * tiles * p.Channels) return;
        int channel = thread % p.Channels;
        int batchTile = thread / p.Channels;
        int tile = batchTile % tiles;
        int batch = batchTile / tiles;
        int first = tile * p.PixelsPerTile;
        int last = Math.Min(first + p.PixelsPerTile, p.Pixels);
        var m = default(DeviceMoments);
        for (int pixel = first; pixel < last; pixel++)
            m.Add(format.Widen(input[(batch * p.Pixels + pixel) * p.ChannelStride + channel]));
        int at = ((batch * tiles + tile) * p.ChannelStride + channel) * MomentValues;
        moments[at] = m.Count;
        moments[at + 1] = m.Mean;
        moments[at + 2] = m.M2;
    }

    private static void Normalize<TFormat>(TFormat format, Index1D index, GroupNormNhwcParams p, ArrayView<uint> input,
        ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> stats, ArrayView<uint> output)
        where TFormat : struct, IHalfFormat
    {
        int wordsPerPixel = p.ChannelStride / ElementsPerWord;
        int word = index;
        if (word >= p.Batch * p.Pixels * wordsPerPixel) return;
        int channel = word % wordsPerPixel * ElementsPerWord;
        int batch = word / wordsPerPixel / p.Pixels;
        uint x = input[word];
        uint low = Channel(format, p, batch, channel, HalfWords.Low(x), gamma, beta, stats);
        uint high = Channel(format, p, batch, channel + 1, HalfWords.High(x), gamma, beta, stats);
        output[word] = HalfWords.Pack(low, high);
    }

    /// <summary>One channel's normalised, narrowed value; 0 for a padding channel.</summary>
    private static uint Channel<TFormat>(TFormat format, GroupNormNhwcParams p, int batch, int channel, uint bits,
        ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> stats) where TFormat : struct, IHalfFormat
    {
        if (channel >= p.Channels) return 0;
        int group = batch * p.Groups + channel / (p.Channels / p.Groups);
        float y = (format.Widen(bits) - stats[group * StatsPerGroup]) * stats[group * StatsPerGroup + 1] * gamma[channel] + beta[channel];
        return format.Narrow(p.FuseSilu != 0 ? DeviceMath.Silu(y) : y);
    }

    private const int StatsPerGroup = 2;
    private const int MomentValues = Conv2dTensorCoreGpu.MomentsPerChannel;
}

/// <summary>Loads the NHWC GroupNorm kernels once for one accelerator and runs statistics, merge and normalisation.</summary>
internal sealed class GroupNormNhwcLauncher
{
    private readonly FormatKernels<Action<AcceleratorStream, Index1D, GroupNormNhwcParams, ArrayView<ushort>, ArrayView<float>>> _moments;
    private readonly FormatKernels<Action<AcceleratorStream, Index1D, GroupNormNhwcParams, ArrayView<uint>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<uint>>> _normalize;
    private readonly GroupNormLauncher _merge;

    private readonly AcceleratorStream _stream;

    public GroupNormNhwcLauncher(Accelerator accelerator, AcceleratorStream stream, GroupNormLauncher merge)
    {
        _stream = stream;
        _moments = new(
            () => accelerator.LoadAutoGroupedKernel<Index1D, GroupNormNhwcParams, ArrayView<ushort>, ArrayView<float>>(GroupNormNhwcGpu.TileMomentsBf16),
            () => accelerator.LoadAutoGroupedKernel<Index1D, GroupNormNhwcParams, ArrayView<ushort>, ArrayView<float>>(GroupNormNhwcGpu.TileMomentsF16));
        _normalize = new(
            () => accelerator.LoadAutoGroupedKernel<Index1D, GroupNormNhwcParams, ArrayView<uint>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<uint>>(GroupNormNhwcGpu.NormalizeBf16),
            () => accelerator.LoadAutoGroupedKernel<Index1D, GroupNormNhwcParams, ArrayView<uint>, ArrayView<float>, ArrayView<float>,
                ArrayView<float>, ArrayView<uint>>(GroupNormNhwcGpu.NormalizeF16));
        _merge = merge;
    }

    /// <summary>Floats of the per-tile moments <see cref="Statistics"/> needs as scratch.</summary>
    public static long MomentsLength(in GroupNormNhwcParams p) =>
        (long)p.Batch * DeviceMath.CeilDiv(p.Pixels, p.PixelsPerTile) * p.ChannelStride * Conv2dTensorCoreGpu.MomentsPerChannel;

    /// <summary>(mean, rstd) per (batch, group) into <paramref name="stats"/>, through per-tile moments in <paramref name="moments"/>.</summary>
    public void Statistics(bool bf16, in GroupNormNhwcParams p, ArrayView<ushort> input, ArrayView<float> moments, ArrayView<float> stats)
    {
        if (p.Channels % p.Groups != 0 || p.ChannelStride % 2 != 0 || p.Channels > p.ChannelStride)
            throw new ArgumentException($"group_norm NHWC: {p.Channels} channels (stride {p.ChannelStride}) in {p.Groups} groups", nameof(p));
        int tiles = DeviceMath.CeilDiv(p.Pixels, p.PixelsPerTile);
        int threads = p.Batch * tiles * p.Channels;
        if (threads == 0) return;
        _moments.Get(bf16)(_stream, threads, p, input, moments);
        _merge.MergeTileMoments(new TileMomentsParams
        {
            Batch = p.Batch,
            Tiles = tiles,
            ChannelStride = p.ChannelStride,
            Groups = p.Groups,
            ChannelsPerGroup = p.Channels / p.Groups,
            Eps = p.Eps,
        }, moments, stats);
    }

    /// <summary>The normalisation with the given (mean, rstd) per group; fp32 gamma and beta [Channels].</summary>
    public void Normalize(bool bf16, in GroupNormNhwcParams p, ArrayView<uint> input, ArrayView<float> gamma,
        ArrayView<float> beta, ArrayView<float> stats, ArrayView<uint> output)
    {
        int words = p.Batch * p.Pixels * p.ChannelStride / 2;
        if (words > 0) _normalize.Get(bf16)(_stream, words, p, input, gamma, beta, stats, output);
    }
}
