using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;

namespace NativeVae.Kernels.Gpu;

// Elementwise kernels and their launcher: activations, add, scale/shift, and the 8-bit RGB image <-> fp32 tensor
// conversions at the edges of the model. One thread per element, early return past the end.

/// <summary>Activation applied by <see cref="ElementwiseGpu.Unary"/>.</summary>
internal enum UnaryKind
{
    /// <summary>x * sigmoid(x).</summary>
    Silu,

    /// <summary>max(x, 0).</summary>
    Relu,

    /// <summary>TAESD's soft clamp tanh(x / 3) * 3.</summary>
    TanhClamp3,

    /// <summary>clamp(x, -1, 1).</summary>
    ClampUnit,
}

internal static class ElementwiseGpu
{
    private const int RgbChannels = 3;
    private const float MaxByte = 255f;

    [GpuKernel]
    internal static void Unary(Index1D index, ArrayView<float> input, ArrayView<float> output, UnaryKind op)
    {
        if (index >= output.IntLength) return;
        output[index] = DeviceMath.Activation(op, input[index]);
    }

    [GpuKernel]
    internal static void Add(Index1D index, ArrayView<float> a, ArrayView<float> b, ArrayView<float> output)
    {
        if (index >= output.IntLength) return;
        output[index] = a[index] + b[index];
    }

    [GpuKernel]
    internal static void ScaleShift(Index1D index, ArrayView<float> input, ArrayView<float> output, float scale, float shift)
    {
        if (index >= output.IntLength) return;
        output[index] = input[index] * scale + shift;
    }

    /// <summary>One thread per element; the rare NaN or infinity adds one to <paramref name="count"/>[0].</summary>
    [GpuKernel]
    internal static void CountNonFinite(Index1D index, ArrayView<float> input, ArrayView<int> count)
    {
        if (index >= input.IntLength) return;
        float v = input[index];
        if (XMath.IsNaN(v) || XMath.IsInfinity(v)) Atomic.Add(ref count[0], 1);
    }

    /// <summary>One thread per output float (planar, so the writes are coalesced): pixel / 255 * scale + shift.</summary>
    [GpuKernel]
    internal static void ImageToTensor(Index1D index, ArrayView<byte> rgb, ArrayView<float> output, int pixelsPerImage,
        float scale, float shift)
    {
        int i = index;
        if (i >= output.IntLength) return;
        int plane = i / pixelsPerImage;
        int pixel = i - plane * pixelsPerImage;
        int batch = plane / RgbChannels;
        int channel = plane - batch * RgbChannels;
        int source = (batch * pixelsPerImage + pixel) * RgbChannels + channel;
        output[i] = rgb[source] / MaxByte * scale + shift;
    }

    /// <summary>
    /// One thread per output byte: round(clamp(x * scale + shift, 0, 1) * 255), rounding half to even like
    /// diffusers' torch .round() (ties only happen for values that are exact multiples of 0.5 / 255). Each NaN or
    /// infinite input adds one to <paramref name="nonFinite"/>[0], so the caller learns of a bad image in the same
    /// download.
    /// </summary>
    [GpuKernel]
    internal static void TensorToImage(Index1D index, ArrayView<float> input, ArrayView<byte> rgb, int pixelsPerImage,
        float scale, float shift, ArrayView<int> nonFinite)
    {
        int i = index;
        if (i >= rgb.IntLength) return;
        int pixelIndex = i / RgbChannels;
        int channel = i - pixelIndex * RgbChannels;
        int batch = pixelIndex / pixelsPerImage;
        int pixel = pixelIndex - batch * pixelsPerImage;
        float x = input[(batch * RgbChannels + channel) * pixelsPerImage + pixel];
        if (XMath.IsNaN(x) || XMath.IsInfinity(x)) Atomic.Add(ref nonFinite[0], 1);
        float value = x * scale + shift;
        // Clamp before scaling; NaN fails both tests below and ends as 0.
        float unit = value > 1f ? 1f : value > 0f ? value : 0f;
        rgb[i] = (byte)DeviceMath.RoundHalfToEven(unit * MaxByte);
    }
}

/// <summary>Loads the elementwise kernels once for one accelerator and launches them.</summary>
internal sealed class ElementwiseLauncher
{
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, UnaryKind> _unary;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>> _add;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, float, float> _scaleShift;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<byte>, ArrayView<float>, int, float, float> _imageToTensor;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<byte>, int, float, float, ArrayView<int>> _tensorToImage;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<int>> _countNonFinite;
    private readonly AcceleratorStream _stream;

    public ElementwiseLauncher(Accelerator accelerator, AcceleratorStream stream)
    {
        _stream = stream;
        _unary = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, UnaryKind>(
            ElementwiseGpu.Unary);
        _add = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>>(
            ElementwiseGpu.Add);
        _scaleShift = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, float, float>(
            ElementwiseGpu.ScaleShift);
        _imageToTensor = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<byte>, ArrayView<float>, int, float, float>(
            ElementwiseGpu.ImageToTensor);
        _tensorToImage = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<byte>, int, float, float, ArrayView<int>>(
            ElementwiseGpu.TensorToImage);
        _countNonFinite = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<int>>(ElementwiseGpu.CountNonFinite);
    }

    /// <summary>
    /// Adds the number of NaN or infinite elements of <paramref name="input"/> to <paramref name="count"/>[0] (enqueued;
    /// the caller zeroes the count first and downloads it).
    /// </summary>
    public void CountNonFinite(ArrayView<float> input, ArrayView<int> count)
    {
        if (input.IntLength > 0) _countNonFinite(_stream, input.IntLength, input, count);
    }

    public void Unary(UnaryKind op, ArrayView<float> input, ArrayView<float> output)
    {
        RequireSameLength(input.IntLength, output.IntLength, "unary input");
        if (output.IntLength > 0) _unary(_stream, output.IntLength, input, output, op);
    }

    public void Add(ArrayView<float> a, ArrayView<float> b, ArrayView<float> output)
    {
        RequireSameLength(a.IntLength, output.IntLength, "add input a");
        RequireSameLength(b.IntLength, output.IntLength, "add input b");
        if (output.IntLength > 0) _add(_stream, output.IntLength, a, b, output);
    }

    public void ScaleShift(ArrayView<float> input, ArrayView<float> output, float scale, float shift)
    {
        RequireSameLength(input.IntLength, output.IntLength, "scale_shift input");
        if (output.IntLength > 0) _scaleShift(_stream, output.IntLength, input, output, scale, shift);
    }

    /// <summary>[N, H, W, 3] bytes to [N, 3, H, W] floats: pixel / 255 * scale + shift.</summary>
    public void ImageToTensor(ArrayView<byte> rgb, ArrayView<float> output, int batch, int height, int width, float scale, float shift)
    {
        int elements = checked(batch * height * width * 3);
        RequireSameLength(rgb.IntLength, elements, "image bytes");
        RequireSameLength(output.IntLength, elements, "image tensor");
        if (elements > 0) _imageToTensor(_stream, elements, rgb, output, height * width, scale, shift);
    }

    /// <summary>
    /// [N, 3, H, W] floats to [N, H, W, 3] bytes: round(clamp(x * scale + shift, 0, 1) * 255), ties to even
    /// (torch.round, as diffusers' postprocessing); the NaN and infinite inputs are added to <paramref name="nonFinite"/>[0].
    /// </summary>
    public void TensorToImage(ArrayView<float> input, ArrayView<byte> rgb, ArrayView<int> nonFinite, int batch, int height,
        int width, float scale, float shift)
    {
        int elements = checked(batch * height * width * 3);
        RequireSameLength(input.IntLength, elements, "image tensor");
        RequireSameLength(rgb.IntLength, elements, "image bytes");
        if (elements > 0) _tensorToImage(_stream, elements, input, rgb, height * width, scale, shift, nonFinite);
    }

    private static void RequireSameLength(int actual, int expected, string what)
    {
        if (actual != expected)
            throw new ArgumentException($"{what} has {actual} elements, the output needs {expected}");
    }
}
