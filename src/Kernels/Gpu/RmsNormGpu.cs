using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// The channel RMS norm (+ SiLU) on NCHW: one thread per (image, pixel) walks the channels twice, once summing
// squares and once writing x * factor * gamma[c]. Neighbouring threads read neighbouring pixels of one plane, so
// every load and store of a warp is coalesced; no shared memory, no barrier.

internal static class RmsNormGpu
{
    [GpuKernel]
    internal static void Normalize(Index1D index, RmsNormParams p, ArrayView<float> input, ArrayView<float> gamma, ArrayView<float> output)
    {
        int i = index;
        if (i >= p.Batch * p.Spatial) return;
        int n = i / p.Spatial;
        int pixel = i - n * p.Spatial;
        int first = n * p.Channels * p.Spatial + pixel;
        float sum = 0f;
        for (int c = 0; c < p.Channels; c++)
        {
            float v = input[first + c * p.Spatial];
            sum += v * v;
        }
        float factor = p.Scale / XMath.Max(XMath.Sqrt(sum), p.Eps);
        for (int c = 0; c < p.Channels; c++)
        {
            int at = first + c * p.Spatial;
            float y = input[at] * factor * gamma[c];
            output[at] = p.FuseSilu != 0 ? DeviceMath.Silu(y) : y;
        }
    }
}

/// <summary>Loads the RMS norm kernel once for one accelerator.</summary>
internal sealed class RmsNormLauncher(Accelerator accelerator)
{
    private readonly Action<Index1D, RmsNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> _normalize =
        accelerator.LoadAutoGroupedStreamKernel<Index1D, RmsNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>(RmsNormGpu.Normalize);

    public void Run(in RmsNormParams p, ArrayView<float> input, ArrayView<float> gamma, ArrayView<float> output)
    {
        int pixels = p.Batch * p.Spatial;
        if (pixels > 0) _normalize(pixels, p, input, gamma, output);
    }
}
