using ILGPU;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// The pixel shuffles of Wan 2.2 (patchify, unpatchify, and its residual blocks' average-down and duplicate-up
// shortcuts): one thread per output element computes where its values come from (PixelShuffleIndex, shared with the
// CPU kernel) and reads them. Neighbouring threads write neighbouring pixels of one plane, so the stores coalesce; the
// loads stride by the factor (2), which these small, memory-bound passes can afford. fp32 only: 16-bit storage goes
// through fp32 in the backend, as these run on the three-channel images and on one tensor per level.

internal static class PixelShuffleGpu
{
    /// <summary>
    /// output[n, o, y, x] = mean over the <c>Group</c> block channels <c>o * Group + q</c> of the frame pixels they
    /// name; block frame 0 is <paramref name="previous"/> (zero when <c>HasPrevious</c> is 0), the last
    /// <paramref name="current"/>.
    /// </summary>
    [GpuKernel]
    internal static void SpaceToDepth(Index1D index, PixelShuffleParams p, ArrayView<float> previous, ArrayView<float> current,
        ArrayView<float> output)
    {
        int i = index;
        if (i >= output.IntLength) return;
        int x = i % p.OutWidth;
        int rest = i / p.OutWidth;
        int y = rest % p.OutHeight;
        rest /= p.OutHeight;
        int o = rest % p.OutChannels;
        int n = rest / p.OutChannels;
        float sum = 0f;
        for (int q = 0; q < p.Group; q++)
        {
            int j = o * p.Group + q;
            int frame = PixelShuffleIndex.SourceFrame(p, j);
            int at = PixelShuffleIndex.SourceIndex(p, n, j, y, x);
            if (frame == p.Frames - 1) sum += current[at];
            else if (p.HasPrevious != 0) sum += previous[at];
        }
        output[i] = sum / p.Group;
    }

    /// <summary>output[n, o, row, column] = the input element <see cref="PixelShuffleIndex.DepthSource"/> names.</summary>
    [GpuKernel]
    internal static void DepthToSpace(Index1D index, PixelShuffleParams p, ArrayView<float> input, ArrayView<float> output)
    {
        int i = index;
        if (i >= output.IntLength) return;
        int column = i % p.OutWidth;
        int rest = i / p.OutWidth;
        int row = rest % p.OutHeight;
        rest /= p.OutHeight;
        int o = rest % p.OutChannels;
        int n = rest / p.OutChannels;
        output[i] = input[PixelShuffleIndex.DepthSource(p, n, o, row, column)];
    }
}

/// <summary>Loads the pixel shuffle kernels once for one accelerator.</summary>
internal sealed class PixelShuffleLauncher(Accelerator accelerator, AcceleratorStream stream)
{
    private readonly Action<AcceleratorStream, Index1D, PixelShuffleParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> _spaceToDepth =
        accelerator.LoadAutoGroupedKernel<Index1D, PixelShuffleParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>(PixelShuffleGpu.SpaceToDepth);

    private readonly Action<AcceleratorStream, Index1D, PixelShuffleParams, ArrayView<float>, ArrayView<float>> _depthToSpace =
        accelerator.LoadAutoGroupedKernel<Index1D, PixelShuffleParams, ArrayView<float>, ArrayView<float>>(PixelShuffleGpu.DepthToSpace);

    /// <param name="previous">the earlier frame, or any view when <c>p.HasPrevious</c> is 0.</param>
    public void SpaceToDepth(in PixelShuffleParams p, ArrayView<float> previous, ArrayView<float> current, ArrayView<float> output)
    {
        if (output.IntLength > 0) _spaceToDepth(stream, output.IntLength, p, previous, current, output);
    }

    public void DepthToSpace(in PixelShuffleParams p, ArrayView<float> input, ArrayView<float> output)
    {
        if (output.IntLength > 0) _depthToSpace(stream, output.IntLength, p, input, output);
    }
}
