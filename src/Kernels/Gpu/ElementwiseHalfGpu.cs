using ILGPU;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// Elementwise kernels over the tensor-core path's 16-bit NHWC activations, and its layout conversions to and from
// fp32 NCHW. One thread per word (two channels of a pixel); arithmetic in fp32, results rounded to nearest even.
// Padding channels (index >= Channels within a pixel's ChannelStride) are zero and stay zero.

/// <summary>Shape of a 16-bit NHWC tensor: [Batch * Pixels, ChannelStride] with Channels real channels.</summary>
internal struct HalfLayout
{
    public int Batch;
    public int Pixels;
    public int Channels;
    public int ChannelStride;

    public readonly int Words => Batch * Pixels * ChannelStride / 2;
}

internal static class ElementwiseHalfGpu
{

    [GpuKernel]
    internal static void UnaryBf16(Index1D index, HalfLayout layout, ArrayView<uint> input, ArrayView<uint> output, UnaryKind op) =>
        Unary(default(Bf16Format), index, layout, input, output, op);

    [GpuKernel]
    internal static void UnaryF16(Index1D index, HalfLayout layout, ArrayView<uint> input, ArrayView<uint> output, UnaryKind op) =>
        Unary(default(F16Format), index, layout, input, output, op);

    [GpuKernel]
    internal static void AddBf16(Index1D index, HalfLayout layout, ArrayView<uint> a, ArrayView<uint> b, ArrayView<uint> output) =>
        Add(default(Bf16Format), index, layout, a, b, output);

    [GpuKernel]
    internal static void AddF16(Index1D index, HalfLayout layout, ArrayView<uint> a, ArrayView<uint> b, ArrayView<uint> output) =>
        Add(default(F16Format), index, layout, a, b, output);

    /// <summary>x * scale + shift on the real channels; padding stays zero.</summary>
    [GpuKernel]
    internal static void ScaleShiftBf16(Index1D index, HalfLayout layout, ArrayView<uint> input, ArrayView<uint> output,
        float scale, float shift) => ScaleShift(default(Bf16Format), index, layout, input, output, scale, shift);

    [GpuKernel]
    internal static void ScaleShiftF16(Index1D index, HalfLayout layout, ArrayView<uint> input, ArrayView<uint> output,
        float scale, float shift) => ScaleShift(default(F16Format), index, layout, input, output, scale, shift);

    /// <summary>fp32 NCHW to 16-bit NHWC, zero padding; one thread per output word.</summary>
    [GpuKernel]
    internal static void FromNchwBf16(Index1D index, HalfLayout layout, ArrayView<float> input, ArrayView<uint> output) =>
        FromNchw(default(Bf16Format), index, layout, input, output);

    [GpuKernel]
    internal static void FromNchwF16(Index1D index, HalfLayout layout, ArrayView<float> input, ArrayView<uint> output) =>
        FromNchw(default(F16Format), index, layout, input, output);

    /// <summary>16-bit NHWC to fp32 NCHW, dropping the padding; one thread per output element (coalesced writes).</summary>
    [GpuKernel]
    internal static void ToNchwBf16(Index1D index, HalfLayout layout, ArrayView<ushort> input, ArrayView<float> output) =>
        ToNchw(default(Bf16Format), index, layout, input, output);

    [GpuKernel]
    internal static void ToNchwF16(Index1D index, HalfLayout layout, ArrayView<ushort> input, ArrayView<float> output) =>
        ToNchw(default(F16Format), index, layout, input, output);

    /// <summary>Every activation maps 0 to 0, so padding needs no test.</summary>
    private static void Unary<TFormat>(TFormat format, Index1D index, HalfLayout layout, ArrayView<uint> input,
        ArrayView<uint> output, UnaryKind op) where TFormat : struct, IHalfFormat
    {
        if (index >= layout.Words) return;
        uint x = input[index];
        output[index] = HalfWords.Pack(format.Narrow(DeviceMath.Activation(op, format.Widen(HalfWords.Low(x)))),
            format.Narrow(DeviceMath.Activation(op, format.Widen(HalfWords.High(x)))));
    }

    private static void Add<TFormat>(TFormat format, Index1D index, HalfLayout layout, ArrayView<uint> a, ArrayView<uint> b,
        ArrayView<uint> output) where TFormat : struct, IHalfFormat
    {
        if (index >= layout.Words) return;
        uint x = a[index], y = b[index];
        output[index] = HalfWords.Pack(format.Narrow(format.Widen(HalfWords.Low(x)) + format.Widen(HalfWords.Low(y))),
            format.Narrow(format.Widen(HalfWords.High(x)) + format.Widen(HalfWords.High(y))));
    }

    private static void ScaleShift<TFormat>(TFormat format, Index1D index, HalfLayout layout, ArrayView<uint> input,
        ArrayView<uint> output, float scale, float shift) where TFormat : struct, IHalfFormat
    {
        if (index >= layout.Words) return;
        int channel = index * 2 % layout.ChannelStride;
        uint x = input[index];
        uint low = channel < layout.Channels ? format.Narrow(format.Widen(HalfWords.Low(x)) * scale + shift) : 0;
        uint high = channel + 1 < layout.Channels ? format.Narrow(format.Widen(HalfWords.High(x)) * scale + shift) : 0;
        output[index] = HalfWords.Pack(low, high);
    }

    private static void FromNchw<TFormat>(TFormat format, Index1D index, HalfLayout layout, ArrayView<float> input,
        ArrayView<uint> output) where TFormat : struct, IHalfFormat
    {
        if (index >= layout.Words) return;
        int element = index * 2;
        int channel = element % layout.ChannelStride;
        int pixel = element / layout.ChannelStride;
        int batch = pixel / layout.Pixels;
        int source = (batch * layout.Channels + channel) * layout.Pixels + pixel - batch * layout.Pixels;
        uint low = channel < layout.Channels ? format.Narrow(input[source]) : 0;
        uint high = channel + 1 < layout.Channels ? format.Narrow(input[source + layout.Pixels]) : 0;
        output[index] = HalfWords.Pack(low, high);
    }

    private static void ToNchw<TFormat>(TFormat format, Index1D index, HalfLayout layout, ArrayView<ushort> input,
        ArrayView<float> output) where TFormat : struct, IHalfFormat
    {
        int i = index;
        if (i >= layout.Batch * layout.Channels * layout.Pixels) return;
        int pixel = i % layout.Pixels;
        int plane = i / layout.Pixels;
        int channel = plane % layout.Channels;
        int batch = plane / layout.Channels;
        output[i] = format.Widen(input[(batch * layout.Pixels + pixel) * layout.ChannelStride + channel]);
    }
}

/// <summary>Loads the 16-bit NHWC elementwise kernels once for one accelerator; each method picks bf16 or fp16.</summary>
internal sealed class ElementwiseHalfLauncher
{
    private readonly FormatKernels<Action<AcceleratorStream, Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, UnaryKind>> _unary;
    private readonly FormatKernels<Action<AcceleratorStream, Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>>> _add;
    private readonly FormatKernels<Action<AcceleratorStream, Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, float, float>> _scaleShift;
    private readonly FormatKernels<Action<AcceleratorStream, Index1D, HalfLayout, ArrayView<float>, ArrayView<uint>>> _fromNchw;
    private readonly FormatKernels<Action<AcceleratorStream, Index1D, HalfLayout, ArrayView<ushort>, ArrayView<float>>> _toNchw;

    private readonly AcceleratorStream _stream;

    public ElementwiseHalfLauncher(Accelerator accelerator, AcceleratorStream stream)
    {
        _stream = stream;
        _unary = new(() => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, UnaryKind>(ElementwiseHalfGpu.UnaryBf16),
            () => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, UnaryKind>(ElementwiseHalfGpu.UnaryF16));
        _add = new(() => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>>(ElementwiseHalfGpu.AddBf16),
            () => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>>(ElementwiseHalfGpu.AddF16));
        _scaleShift = new(() => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, float, float>(ElementwiseHalfGpu.ScaleShiftBf16),
            () => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<uint>, ArrayView<uint>, float, float>(ElementwiseHalfGpu.ScaleShiftF16));
        _fromNchw = new(() => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<float>, ArrayView<uint>>(ElementwiseHalfGpu.FromNchwBf16),
            () => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<float>, ArrayView<uint>>(ElementwiseHalfGpu.FromNchwF16));
        _toNchw = new(() => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<ushort>, ArrayView<float>>(ElementwiseHalfGpu.ToNchwBf16),
            () => accelerator.LoadAutoGroupedKernel<Index1D, HalfLayout, ArrayView<ushort>, ArrayView<float>>(ElementwiseHalfGpu.ToNchwF16));
    }

    public void Unary(bool bf16, in HalfLayout layout, UnaryKind op, ArrayView<uint> input, ArrayView<uint> output)
    {
        if (layout.Words > 0) _unary.Get(bf16)(_stream, layout.Words, layout, input, output, op);
    }

    public void Add(bool bf16, in HalfLayout layout, ArrayView<uint> a, ArrayView<uint> b, ArrayView<uint> output)
    {
        if (layout.Words > 0) _add.Get(bf16)(_stream, layout.Words, layout, a, b, output);
    }

    public void ScaleShift(bool bf16, in HalfLayout layout, ArrayView<uint> input, ArrayView<uint> output, float scale, float shift)
    {
        if (layout.Words > 0) _scaleShift.Get(bf16)(_stream, layout.Words, layout, input, output, scale, shift);
    }

    public void FromNchw(bool bf16, in HalfLayout layout, ArrayView<float> input, ArrayView<uint> output)
    {
        if (layout.Words > 0) _fromNchw.Get(bf16)(_stream, layout.Words, layout, input, output);
    }

    public void ToNchw(bool bf16, in HalfLayout layout, ArrayView<ushort> input, ArrayView<float> output)
    {
        int elements = layout.Batch * layout.Channels * layout.Pixels;
        if (elements > 0) _toNchw.Get(bf16)(_stream, elements, layout, input, output);
    }
}
