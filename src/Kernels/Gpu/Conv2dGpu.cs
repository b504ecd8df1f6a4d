using ILGPU;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// Conv2d kernels and their launcher: input [N, Cin, H, W], weight [Cout, Cin, K, K], output [N, Cout, Ho, Wo].
// Both versions fuse a nearest 2x upsample of the input, the bias and a residual add. Padding is PadTop/PadLeft;
// bottom/right padding is implied by the output size, and every read outside the (virtual) input is zero.

internal static class Conv2dGpu
{
    /// <summary>Output channels per Direct thread (two Float4 accumulators).</summary>
    public const int DirectChannelBlock = 8;

    // SharedTile: implicit GEMM, M = Cout, N = batch * Ho * Wo, depth = Cin * K * K.
    // A 16 x 16 thread group computes a 64 x 64 output tile, each thread a 4 x 4 register block whose rows and
    // columns are strided by 16, so that a warp's shared-memory reads are broadcasts or consecutive words.
    public const int TileM = 64;
    public const int TileN = 64;
    public const int TileDepth = 16;
    public const int GroupWidth = 16;
    public const int GroupSize = GroupWidth * GroupWidth;

    /// <summary>The weight tile is stored transposed ([depth][m]); one word of padding spreads the stores over banks.</summary>
    private const int WeightTilePitch = TileM + 1;

    /// <summary>Depth entries of the input tile each thread gathers per step (consecutive, decoded once).</summary>
    private const int InputLoadsPerThread = TileDepth * TileN / GroupSize;

    /// <summary>Output rows of the weight tile each thread loads per step.</summary>
    private const int WeightLoadsPerThread = TileM * TileDepth / GroupSize;

    /// <summary>
    /// One thread per (output pixel, block of 8 output channels), pixels fastest so that neighbouring threads read
    /// neighbouring input and write neighbouring output. The tap loops sit outside the channel loop, so the
    /// bounds tests run K*K times per thread, not Cin*K*K.
    /// </summary>
    [GpuKernel]
    internal static void Direct(Index1D index, Conv2dParams p, ArrayView<float> input, ArrayView<float> weight,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> output)
    {
        int pixels = p.OutHeight * p.OutWidth;
        int channelBlocks = DeviceMath.CeilDiv(p.OutChannels, DirectChannelBlock);
        int thread = index;
        if (thread >= p.Batch * channelBlocks * pixels) return;
        int pixel = thread % pixels;
        int rest = thread / pixels;
        int firstChannel = rest % channelBlocks * DirectChannelBlock;
        int batch = rest / channelBlocks;
        int oy = pixel / p.OutWidth;
        int ox = pixel - oy * p.OutWidth;

        int taps = p.Kernel * p.Kernel;
        int channelStride = p.InChannels * taps;
        // Channels past Cout read the last real channel's weights, so the hot loop has no tail test; their sums
        // are dropped by the epilogue.
        int last = p.OutChannels - 1;
        int o1 = (Math.Min(firstChannel + 1, last) - firstChannel) * channelStride;
        int o2 = (Math.Min(firstChannel + 2, last) - firstChannel) * channelStride;
        int o3 = (Math.Min(firstChannel + 3, last) - firstChannel) * channelStride;
        int o4 = (Math.Min(firstChannel + 4, last) - firstChannel) * channelStride;
        int o5 = (Math.Min(firstChannel + 5, last) - firstChannel) * channelStride;
        int o6 = (Math.Min(firstChannel + 6, last) - firstChannel) * channelStride;
        int o7 = (Math.Min(firstChannel + 7, last) - firstChannel) * channelStride;

        int up = p.Upsample2x;
        int plane = p.InHeight * p.InWidth;
        int inputBase = batch * p.InChannels * plane;
        int iy0 = oy * p.Stride - p.PadTop;
        int ix0 = ox * p.Stride - p.PadLeft;
        var low = default(Float4);
        var high = default(Float4);
        for (int ky = 0; ky < p.Kernel; ky++)
        {
            int iy = iy0 + ky;
            if (!InsideVirtualInput(iy, p.InHeight, up)) continue;
            int rowBase = inputBase + (iy >> up) * p.InWidth;
            for (int kx = 0; kx < p.Kernel; kx++)
            {
                int ix = ix0 + kx;
                if (!InsideVirtualInput(ix, p.InWidth, up)) continue;
                int source = rowBase + (ix >> up);
                int w = firstChannel * channelStride + ky * p.Kernel + kx;
                for (int ci = 0; ci < p.InChannels; ci++, source += plane, w += taps)
                {
                    float x = input[source];
                    low = low.MultiplyAdd(x, new Float4(weight[w], weight[w + o1], weight[w + o2], weight[w + o3]));
                    high = high.MultiplyAdd(x, new Float4(weight[w + o4], weight[w + o5], weight[w + o6], weight[w + o7]));
                }
            }
        }

        int count = Math.Min(DirectChannelBlock, p.OutChannels - firstChannel);
        for (int j = 0; j < count; j++)
        {
            float sum = j < Float4Lanes ? low.Lane(j) : high.Lane(j - Float4Lanes);
            Store(p, batch, firstChannel + j, pixel, sum, bias, residual, output);
        }
    }

    /// <summary>
    /// Implicit GEMM: per depth step the group stages a 64 x 16 weight tile and a 16 x 64 im2col input tile in
    /// shared memory, then each thread accumulates its 4 x 4 block. Tails in M, N and depth load zeros.
    /// Launch: grid (ceil(N / 64), ceil(Cout / 64)), group 256.
    /// </summary>
    [GpuKernel(ExplicitlyGrouped = true)]
    internal static void SharedTile(Conv2dParams p, ArrayView<float> input, ArrayView<float> weight,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> output)
    {
        var weightTile = SharedMemory.Allocate<float>(TileDepth * WeightTilePitch);
        var inputTile = SharedMemory.Allocate<float>(TileDepth * TileN);

        int thread = Group.IdxX;
        int tx = thread % GroupWidth;
        int ty = thread / GroupWidth;
        int n0 = Grid.IdxX * TileN;
        int m0 = Grid.IdxY * TileM;
        int pixels = p.OutHeight * p.OutWidth;
        int columns = p.Batch * pixels;
        int taps = p.Kernel * p.Kernel;
        int depth = p.InChannels * taps;
        int up = p.Upsample2x;
        int plane = p.InHeight * p.InWidth;

        // The column this thread gathers for the input tile is the same every step: decode it once.
        int loadColumn = thread % TileN;
        int loadDepth = thread / TileN * InputLoadsPerThread;
        int column = n0 + loadColumn;
        bool columnValid = column < columns;
        int columnBatch = columnValid ? column / pixels : 0;
        int columnPixel = columnValid ? column - columnBatch * pixels : 0;
        int columnY = columnPixel / p.OutWidth;
        int iy0 = columnY * p.Stride - p.PadTop;
        int ix0 = (columnPixel - columnY * p.OutWidth) * p.Stride - p.PadLeft;
        int columnBase = columnBatch * p.InChannels * plane;

        int weightLoadDepth = thread % TileDepth;
        int weightLoadRow = thread / TileDepth;
        const int WeightRowStep = GroupSize / TileDepth;

        var acc0 = default(Float4);
        var acc1 = default(Float4);
        var acc2 = default(Float4);
        var acc3 = default(Float4);
        for (int k0 = 0; k0 < depth; k0 += TileDepth)
        {
            int wk = k0 + weightLoadDepth;
            for (int r = 0; r < WeightLoadsPerThread; r++)
            {
                int m = weightLoadRow + r * WeightRowStep;
                int gm = m0 + m;
                weightTile[weightLoadDepth * WeightTilePitch + m] =
                    gm < p.OutChannels && wk < depth ? weight[gm * depth + wk] : 0f;
            }

            // This thread's depth entries are consecutive: one decode, then carry-adds.
            int k = k0 + loadDepth;
            int ci = k / taps;
            int tap = k - ci * taps;
            int ky = tap / p.Kernel;
            int kx = tap - ky * p.Kernel;
            for (int r = 0; r < InputLoadsPerThread; r++)
            {
                float value = 0f;
                int iy = iy0 + ky;
                int ix = ix0 + kx;
                if (columnValid && k + r < depth
                    && InsideVirtualInput(iy, p.InHeight, up) && InsideVirtualInput(ix, p.InWidth, up))
                    value = input[columnBase + ci * plane + (iy >> up) * p.InWidth + (ix >> up)];
                inputTile[(loadDepth + r) * TileN + loadColumn] = value;
                if (++kx == p.Kernel)
                {
                    kx = 0;
                    if (++ky == p.Kernel)
                    {
                        ky = 0;
                        ci++;
                    }
                }
            }
            Group.Barrier();

            for (int kk = 0; kk < TileDepth; kk++)
            {
                int w = kk * WeightTilePitch + ty;
                int x = kk * TileN + tx;
                var columnsOfK = new Float4(inputTile[x], inputTile[x + GroupWidth],
                    inputTile[x + 2 * GroupWidth], inputTile[x + 3 * GroupWidth]);
                acc0 = acc0.MultiplyAdd(weightTile[w], columnsOfK);
                acc1 = acc1.MultiplyAdd(weightTile[w + GroupWidth], columnsOfK);
                acc2 = acc2.MultiplyAdd(weightTile[w + 2 * GroupWidth], columnsOfK);
                acc3 = acc3.MultiplyAdd(weightTile[w + 3 * GroupWidth], columnsOfK);
            }
            Group.Barrier();
        }

        for (int b = 0; b < Float4Lanes; b++)
        {
            int n = n0 + tx + b * GroupWidth;
            if (n >= columns) continue;
            int batch = n / pixels;
            int pixel = n - batch * pixels;
            StoreRow(p, m0 + ty, batch, pixel, acc0.Lane(b), bias, residual, output);
            StoreRow(p, m0 + ty + GroupWidth, batch, pixel, acc1.Lane(b), bias, residual, output);
            StoreRow(p, m0 + ty + 2 * GroupWidth, batch, pixel, acc2.Lane(b), bias, residual, output);
            StoreRow(p, m0 + ty + 3 * GroupWidth, batch, pixel, acc3.Lane(b), bias, residual, output);
        }
    }

    private const int Float4Lanes = 4;

    /// <summary>Whether a coordinate of the (possibly 2x upsampled) input lies inside it.</summary>
    private static bool InsideVirtualInput(int coordinate, int size, int upsampleShift) =>
        (uint)coordinate < (uint)(size << upsampleShift);

    private static void StoreRow(Conv2dParams p, int channel, int batch, int pixel, float sum,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> output)
    {
        if (channel < p.OutChannels) Store(p, batch, channel, pixel, sum, bias, residual, output);
    }

    /// <summary>The epilogue both versions share: y = sum + bias + residual.</summary>
    private static void Store(Conv2dParams p, int batch, int channel, int pixel, float sum,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> output)
    {
        int o = (batch * p.OutChannels + channel) * (p.OutHeight * p.OutWidth) + pixel;
        if (p.HasBias != 0) sum += bias[channel];
        if (p.HasResidual != 0) sum += residual[o];
        output[o] = sum;
    }
}

/// <summary>Loads the conv2d kernels once for one accelerator and launches the requested version.</summary>
internal sealed class Conv2dLauncher
{
    private readonly Action<AcceleratorStream, Index1D, Conv2dParams, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>> _direct;
    private readonly Action<AcceleratorStream, KernelConfig, Conv2dParams, ArrayView<float>, ArrayView<float>,
        ArrayView<float>, ArrayView<float>, ArrayView<float>> _sharedTile;

    private readonly AcceleratorStream _stream;

    public Conv2dLauncher(Accelerator accelerator, AcceleratorStream stream)
    {
        _stream = stream;
        _direct = accelerator.LoadAutoGroupedKernel<Index1D, Conv2dParams, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Conv2dGpu.Direct);
        _sharedTile = accelerator.LoadKernel<Conv2dParams, ArrayView<float>, ArrayView<float>,
            ArrayView<float>, ArrayView<float>, ArrayView<float>>(Conv2dGpu.SharedTile);
    }

    /// <summary>
    /// Runs conv2d. <paramref name="bias"/> and <paramref name="residual"/> are read only when
    /// <see cref="Conv2dParams.HasBias"/> / <see cref="Conv2dParams.HasResidual"/> are set (pass any view otherwise).
    /// </summary>
    public void Run(Conv2dVersion version, in Conv2dParams p, ArrayView<float> input, ArrayView<float> weight,
        ArrayView<float> bias, ArrayView<float> residual, ArrayView<float> output)
    {
        int columns = p.Batch * p.OutHeight * p.OutWidth;
        if (columns == 0 || p.OutChannels == 0) return;
        switch (version)
        {
            case Conv2dVersion.Direct:
                int threads = p.Batch * DeviceMath.CeilDiv(p.OutChannels, Conv2dGpu.DirectChannelBlock)
                    * p.OutHeight * p.OutWidth;
                _direct(_stream, threads, p, input, weight, bias, residual, output);
                break;
            case Conv2dVersion.SharedTile:
                var grid = new Index2D(DeviceMath.CeilDiv(columns, Conv2dGpu.TileN),
                    DeviceMath.CeilDiv(p.OutChannels, Conv2dGpu.TileM));
                _sharedTile(_stream, new KernelConfig(grid, new Index2D(Conv2dGpu.GroupSize, 1)),
                    p, input, weight, bias, residual, output);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(version), version, "unknown conv2d kernel version");
        }
    }
}
