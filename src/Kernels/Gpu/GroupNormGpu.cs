using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// GroupNorm kernels and their launcher, over [Batch, Channels, Spatial] in NCHW order: a (batch, group) is one
// contiguous run of Channels / Groups * Spatial values. Statistics are two-pass in fp32 (mean, then the mean of
// squared deviations: biased variance, as torch.group_norm), rstd = 1 / sqrt(var + eps). Each version writes
// stats [Batch * Groups * 2] = (mean, rstd), then one elementwise kernel normalises, applies the affine and SiLU.

internal static class GroupNormGpu
{
    /// <summary>Threads per (batch, group) in GroupReduce; a power of two for the tree reduction.</summary>
    public const int ReduceGroupSize = 256;

    /// <summary>
    /// Terms summed into a partial before it is folded into the total: bounds the fp32 rounding error of a
    /// single thread's sum over a million values (Simple) to about that of a sum of a thousand.
    /// </summary>
    private const int PartialSumLength = 1024;

    private const int StatsPerGroup = 2;

    /// <summary>One thread per (batch, group) computes its statistics serially. Plain, and slow on a GPU.</summary>
    [GpuKernel]
    internal static void StatsSimple(Index1D index, GroupNormParams p, ArrayView<float> input, ArrayView<float> stats)
    {
        int group = index;
        if (group >= p.Batch * p.Groups) return;
        int count = p.Channels / p.Groups * p.Spatial;
        int begin = group * count;
        float mean = Sum(input, begin, begin + count, 1, 0f, false) / count;
        float m2 = Sum(input, begin, begin + count, 1, mean, true);
        stats[group * StatsPerGroup] = mean;
        stats[group * StatsPerGroup + 1] = SecondStat(p, m2, count);
    }

    /// <summary>
    /// One thread group per (batch, group): strided, coalesced partial sums, then a shared-memory tree reduction,
    /// once for the mean and once for the squared deviations. Launch: grid Batch * Groups, group 256.
    /// </summary>
    [GpuKernel(ExplicitlyGrouped = true)]
    internal static void StatsGroupReduce(GroupNormParams p, ArrayView<float> input, ArrayView<float> stats)
    {
        var scratch = SharedMemory.Allocate<float>(ReduceGroupSize);
        int group = Grid.IdxX;
        int thread = Group.IdxX;
        int count = p.Channels / p.Groups * p.Spatial;
        int begin = group * count;
        int end = begin + count;
        float mean = GroupSum(Sum(input, begin + thread, end, ReduceGroupSize, 0f, false), scratch, thread) / count;
        float m2 = GroupSum(Sum(input, begin + thread, end, ReduceGroupSize, mean, true), scratch, thread);
        if (thread == 0)
        {
            stats[group * StatsPerGroup] = mean;
            stats[group * StatsPerGroup + 1] = SecondStat(p, m2, count);
        }
    }

    /// <summary>
    /// (mean, rstd) per (batch, group), or (mean, M2) with StatsAsMoments (exact tiling merges tiles' moments on the
    /// host), from the per-tile channel moments a conv epilogue wrote: one group of threads
    /// per (batch, group) merges a strided share of the (tile, channel) entries each, then a shared-memory tree
    /// merges the threads'. Launch: grid Batch * Groups, group a power of two up to ReduceGroupSize (no more threads
    /// than entries: a strip's few tiles per channel need one warp, not eight).
    /// </summary>
    [GpuKernel(ExplicitlyGrouped = true)]
    internal static void MergeTileMoments(TileMomentsParams p, ArrayView<float> moments, ArrayView<float> stats)
    {
        var scratch = SharedMemory.Allocate<DeviceMoments>(ReduceGroupSize);
        int threads = Group.DimX;
        int thread = Group.IdxX;
        int batchGroup = Grid.IdxX;
        int batch = batchGroup / p.Groups;
        int firstChannel = (batchGroup - batch * p.Groups) * p.ChannelsPerGroup;
        int entries = p.Tiles * p.ChannelsPerGroup;
        var mine = default(DeviceMoments);
        for (int i = thread; i < entries; i += threads)
        {
            int tile = i / p.ChannelsPerGroup;
            int channel = firstChannel + i - tile * p.ChannelsPerGroup;
            int at = ((batch * p.Tiles + tile) * p.ChannelStride + channel) * TileMomentValues;
            mine = mine.Merge(new DeviceMoments { Count = moments[at], Mean = moments[at + 1], M2 = moments[at + 2] });
        }
        scratch[thread] = mine;
        Group.Barrier();
        for (int half = threads / 2; half > 0; half >>= 1)
        {
            if (thread < half) scratch[thread] = scratch[thread].Merge(scratch[thread + half]);
            Group.Barrier();
        }
        if (thread != 0) return;
        var total = scratch[0];
        stats[batchGroup * StatsPerGroup] = total.Mean;
        stats[batchGroup * StatsPerGroup + 1] = p.StatsAsMoments != 0 ? total.M2 : XMath.Rsqrt(total.M2 / total.Count + p.Eps);
    }

    /// <summary>Count, mean, M2 per (tile, channel), as <see cref="Conv2dTensorCoreGpu"/> writes them.</summary>
    private const int TileMomentValues = Conv2dTensorCoreGpu.MomentsPerChannel;

    /// <summary>y = (x - mean) * rstd * gamma[c] + beta[c], then SiLU when fused; one thread per element.</summary>
    [GpuKernel]
    internal static void Normalize(Index1D index, GroupNormParams p, ArrayView<float> input, ArrayView<float> gamma,
        ArrayView<float> beta, ArrayView<float> stats, ArrayView<float> output)
    {
        int i = index;
        if (i >= p.Batch * p.Channels * p.Spatial) return;
        int row = i / p.Spatial;
        int channel = row % p.Channels;
        int batch = row / p.Channels;
        int group = batch * p.Groups + channel / (p.Channels / p.Groups);
        float mean = stats[group * StatsPerGroup];
        float rstd = stats[group * StatsPerGroup + 1];
        float y = (input[i] - mean) * rstd * gamma[channel] + beta[channel];
        output[i] = p.FuseSilu != 0 ? DeviceMath.Silu(y) : y;
    }

    /// <summary>
    /// y = x * scale[row] + shift[row] (then SiLU) with row = batch * Channels + channel: a GroupNorm whose
    /// statistics were merged elsewhere (exact tiling), folded with its affine. One thread per element.
    /// </summary>
    [GpuKernel]
    internal static void ChannelAffine(Index1D index, ChannelAffineParams p, ArrayView<float> input, ArrayView<float> scale,
        ArrayView<float> shift, ArrayView<float> output)
    {
        int i = index;
        if (i >= p.Rows * p.Spatial) return;
        int row = i / p.Spatial;
        float y = input[i] * scale[row] + shift[row];
        output[i] = p.FuseSilu != 0 ? DeviceMath.Silu(y) : y;
    }

    /// <summary>rstd = 1 / sqrt(M2 / count + eps), or M2 itself for the moments form.</summary>
    private static float SecondStat(GroupNormParams p, float m2, int count) =>
        p.StatsAsMoments != 0 ? m2 : XMath.Rsqrt(m2 / count + p.Eps);

    /// <summary>
    /// Sum of x[i] (or of (x[i] - mean)^2 when <paramref name="squaredDeviation"/>) for i = begin, begin + step, ...
    /// below end, folded through partials of <see cref="PartialSumLength"/> terms.
    /// </summary>
    private static float Sum(ArrayView<float> x, int begin, int end, int step, float mean, bool squaredDeviation)
    {
        float total = 0f;
        float partial = 0f;
        int terms = 0;
        for (int i = begin; i < end; i += step)
        {
            float value = x[i];
            if (squaredDeviation)
            {
                float d = value - mean;
                value = d * d;
            }
            partial += value;
            if (++terms == PartialSumLength)
            {
                total += partial;
                partial = 0f;
                terms = 0;
            }
        }
        return total + partial;
    }

    /// <summary>Sum of one value per thread of the group, by a shared-memory tree; every thread gets the result.</summary>
    private static float GroupSum(float value, ArrayView<float> scratch, int thread)
    {
        scratch[thread] = value;
        Group.Barrier();
        for (int half = ReduceGroupSize / 2; half > 0; half >>= 1)
        {
            if (thread < half) scratch[thread] += scratch[thread + half];
            Group.Barrier();
        }
        float sum = scratch[0];
        // The scratch is reused by the next reduction: nobody may overwrite it before everyone has read it.
        Group.Barrier();
        return sum;
    }
}

/// <summary>Loads the GroupNorm kernels once for one accelerator and launches the requested version.</summary>
internal sealed class GroupNormLauncher
{
    private readonly Action<AcceleratorStream, Index1D, GroupNormParams, ArrayView<float>, ArrayView<float>> _statsSimple;
    private readonly Action<AcceleratorStream, KernelConfig, GroupNormParams, ArrayView<float>, ArrayView<float>> _statsGroupReduce;
    private readonly Action<AcceleratorStream, Index1D, GroupNormParams, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>> _normalize;
    private readonly Action<AcceleratorStream, Index1D, ChannelAffineParams, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>> _channelAffine;
    private readonly Action<AcceleratorStream, KernelConfig, TileMomentsParams, ArrayView<float>, ArrayView<float>> _mergeTileMoments;

    private readonly AcceleratorStream _stream;

    public GroupNormLauncher(Accelerator accelerator, AcceleratorStream stream)
    {
        _stream = stream;
        _statsSimple = accelerator.LoadAutoGroupedKernel<Index1D, GroupNormParams, ArrayView<float>,
            ArrayView<float>>(GroupNormGpu.StatsSimple);
        _statsGroupReduce = accelerator.LoadKernel<GroupNormParams, ArrayView<float>, ArrayView<float>>(
            GroupNormGpu.StatsGroupReduce);
        _normalize = accelerator.LoadAutoGroupedKernel<Index1D, GroupNormParams, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(GroupNormGpu.Normalize);
        _channelAffine = accelerator.LoadAutoGroupedKernel<Index1D, ChannelAffineParams, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(GroupNormGpu.ChannelAffine);
        _mergeTileMoments = accelerator.LoadKernel<TileMomentsParams, ArrayView<float>, ArrayView<float>>(
            GroupNormGpu.MergeTileMoments);
    }

    /// <summary>(mean, rstd) or (mean, M2) per (batch, group) into <paramref name="stats"/> from a conv's per-tile channel moments.</summary>
    public void MergeTileMoments(in TileMomentsParams p, ArrayView<float> moments, ArrayView<float> stats)
    {
        int groups = p.Batch * p.Groups;
        if (groups > 0) _mergeTileMoments(_stream, new KernelConfig(groups, MergeThreads(p.Tiles * p.ChannelsPerGroup)), p, moments, stats);
    }

    /// <summary>One warp at least (the tree needs a power of two), then as many threads as entries, up to ReduceGroupSize.</summary>
    internal static int MergeThreads(int entries)
    {
        int threads = MergeWarp;
        while (threads < entries && threads < GroupNormGpu.ReduceGroupSize) threads *= 2;
        return threads;
    }

    private const int MergeWarp = 32;

    /// <summary><paramref name="stats"/>: [Batch * Groups * 2] = (mean, rstd) per group, a side output.</summary>
    public void Run(GroupNormVersion version, in GroupNormParams p, ArrayView<float> input, ArrayView<float> gamma,
        ArrayView<float> beta, ArrayView<float> stats, ArrayView<float> output)
    {
        Statistics(version, p, input, stats);
        int elements = p.Batch * p.Channels * p.Spatial;
        if (elements > 0) _normalize(_stream, elements, p, input, gamma, beta, stats, output);
    }

    /// <summary>
    /// Only the statistics: (mean, rstd), or (mean, M2) when <see cref="GroupNormParams.StatsAsMoments"/> is set.
    /// </summary>
    public void Statistics(GroupNormVersion version, in GroupNormParams p, ArrayView<float> input, ArrayView<float> stats)
    {
        int groups = p.Batch * p.Groups;
        if (groups == 0) return;
        switch (version)
        {
            case GroupNormVersion.Simple:
                _statsSimple(_stream, groups, p, input, stats);
                break;
            case GroupNormVersion.GroupReduce:
                _statsGroupReduce(_stream, new KernelConfig(groups, GroupNormGpu.ReduceGroupSize), p, input, stats);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(version), version, "unknown group_norm kernel version");
        }
    }

    /// <summary>y = x * scale[row] + shift[row] (+ SiLU) over [Rows, Spatial].</summary>
    public void ChannelAffine(in ChannelAffineParams p, ArrayView<float> input, ArrayView<float> scale, ArrayView<float> shift,
        ArrayView<float> output)
    {
        int elements = p.Rows * p.Spatial;
        if (elements > 0) _channelAffine(_stream, elements, p, input, scale, shift, output);
    }
}
