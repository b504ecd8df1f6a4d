using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// The channel RMS norm (+ SiLU): one thread per (image, pixel) walks the channels twice, once summing squares and
// once writing x * factor * gamma[c]. On fp32 NCHW neighbouring threads read neighbouring pixels of one plane, so
// every load and store of a warp is coalesced. On the tensor-core path's 16-bit NHWC a pixel's channels are one
// contiguous run of words (two channels each), read twice by its thread; padding channels stay zero. No shared
// memory, no barrier.

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

    [GpuKernel]
    internal static void NormalizeBf16(Index1D index, RmsNormParams p, HalfLayout layout, ArrayView<uint> input, ArrayView<float> gamma,
        ArrayView<uint> output) => NormalizeHalf(default(Bf16Format), index, p, layout, input, gamma, output);

    [GpuKernel]
    internal static void NormalizeF16(Index1D index, RmsNormParams p, HalfLayout layout, ArrayView<uint> input, ArrayView<float> gamma,
        ArrayView<uint> output) => NormalizeHalf(default(F16Format), index, p, layout, input, gamma, output);

    private static void NormalizeHalf<TFormat>(TFormat format, Index1D index, RmsNormParams p, HalfLayout layout, ArrayView<uint> input,
        ArrayView<float> gamma, ArrayView<uint> output) where TFormat : struct, IHalfFormat
    {
        int pixel = index;
        if (pixel >= layout.Batch * layout.Pixels) return;
        int words = layout.ChannelStride / 2;
        int first = pixel * words;
        float sum = 0f;
        for (int w = 0; w < words; w++)
        {
            uint x = input[first + w];
            float low = format.Widen(HalfWords.Low(x)), high = format.Widen(HalfWords.High(x));
            sum += low * low + high * high;   // padding is zero
        }
        float factor = p.Scale / XMath.Max(XMath.Sqrt(sum), p.Eps);
        for (int w = 0; w < words; w++)
        {
            uint x = input[first + w];
            int channel = 2 * w;
            uint low = channel < layout.Channels ? format.Narrow(Activate(p, format.Widen(HalfWords.Low(x)) * factor * gamma[channel])) : 0;
            uint high = channel + 1 < layout.Channels ? format.Narrow(Activate(p, format.Widen(HalfWords.High(x)) * factor * gamma[channel + 1])) : 0;
            output[first + w] = HalfWords.Pack(low, high);
        }
    }

    private static float Activate(RmsNormParams p, float y) => p.FuseSilu != 0 ? DeviceMath.Silu(y) : y;
}

/// <summary>Loads the RMS norm kernel once for one accelerator.</summary>
internal sealed class RmsNormLauncher(Accelerator accelerator, AcceleratorStream stream)
{
    private readonly Action<AcceleratorStream, Index1D, RmsNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>> _normalize =
        accelerator.LoadAutoGroupedKernel<Index1D, RmsNormParams, ArrayView<float>, ArrayView<float>, ArrayView<float>>(RmsNormGpu.Normalize);

    public void Run(in RmsNormParams p, ArrayView<float> input, ArrayView<float> gamma, ArrayView<float> output)
    {
        int pixels = p.Batch * p.Spatial;
        if (pixels > 0) _normalize(stream, pixels, p, input, gamma, output);
    }
}

/// <summary>Loads the 16-bit NHWC RMS norm kernels once for one accelerator; each call picks bf16 or fp16.</summary>
internal sealed class RmsNormHalfLauncher(Accelerator accelerator, AcceleratorStream stream)
{
    private readonly FormatKernels<Action<AcceleratorStream, Index1D, RmsNormParams, HalfLayout, ArrayView<uint>, ArrayView<float>, ArrayView<uint>>> _kernels = new(
        () => accelerator.LoadAutoGroupedKernel<Index1D, RmsNormParams, HalfLayout, ArrayView<uint>, ArrayView<float>, ArrayView<uint>>(RmsNormGpu.NormalizeBf16),
        () => accelerator.LoadAutoGroupedKernel<Index1D, RmsNormParams, HalfLayout, ArrayView<uint>, ArrayView<float>, ArrayView<uint>>(RmsNormGpu.NormalizeF16));

    public void Run(bool bf16, in RmsNormParams p, in HalfLayout layout, ArrayView<uint> input, ArrayView<float> gamma, ArrayView<uint> output)
    {
        int pixels = layout.Batch * layout.Pixels;
        if (pixels > 0) _kernels.Get(bf16)(stream, pixels, p, layout, input, gamma, output);
    }
}
