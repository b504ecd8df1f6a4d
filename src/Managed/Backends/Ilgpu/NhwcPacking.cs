using NativeVae.Kernels.Gpu;

namespace NativeVae.Backends.Ilgpu;

/// <summary>
/// Host-side layouts of the tensor-core kernels (<see cref="Conv2dTensorCoreGpu"/>): NCHW fp32 to and from NHWC in
/// 16 bits with the channels padded by zeros to <see cref="Conv2dTensorCoreGpu.ChannelAlignment"/>, and conv
/// weights [Cout, Cin, K, K] packed once into the K-major [CoutPadded, K * K, CinPadded] the GEMM reads.
/// Elements are the 16 stored bits, rounded to nearest even.
/// </summary>
internal static class NhwcPacking
{
    /// <summary>A channel count rounded up to the tensor-core kernels' alignment.</summary>
    public static int PaddedChannels(int channels) =>
        checked((channels + Conv2dTensorCoreGpu.ChannelAlignment - 1) / Conv2dTensorCoreGpu.ChannelAlignment
                * Conv2dTensorCoreGpu.ChannelAlignment);

    /// <summary>[N, C, H, W] fp32 to [N, H, W, PaddedChannels(C)] 16-bit.</summary>
    public static ushort[] ToNhwc<TFormat>(ReadOnlySpan<float> nchw, int batch, int channels, int height, int width)
        where TFormat : struct, IHalfFormat
    {
        Require(nchw.Length, (long)batch * channels * height * width, "NCHW input");
        int padded = PaddedChannels(channels);
        int plane = height * width;
        var nhwc = new ushort[checked(batch * plane * padded)];
        var format = default(TFormat);
        for (int n = 0; n < batch; n++)
        for (int c = 0; c < channels; c++)
        for (int i = 0; i < plane; i++)
            nhwc[(n * plane + i) * padded + c] = (ushort)format.Narrow(nchw[(n * channels + c) * plane + i]);
        return nhwc;
    }

    /// <summary>[N, H, W, PaddedChannels(C)] 16-bit to [N, C, H, W] fp32, dropping the padding.</summary>
    public static float[] FromNhwc<TFormat>(ReadOnlySpan<ushort> nhwc, int batch, int channels, int height, int width)
        where TFormat : struct, IHalfFormat
    {
        int padded = PaddedChannels(channels);
        int plane = height * width;
        Require(nhwc.Length, (long)batch * plane * padded, "NHWC input");
        var nchw = new float[checked(batch * channels * plane)];
        var format = default(TFormat);
        for (int n = 0; n < batch; n++)
        for (int c = 0; c < channels; c++)
        for (int i = 0; i < plane; i++)
            nchw[(n * channels + c) * plane + i] = format.Widen(nhwc[(n * plane + i) * padded + c]);
        return nchw;
    }

    /// <summary>Weight [Cout, Cin, K, K] fp32 to [PaddedChannels(Cout), K * K, PaddedChannels(Cin)] 16-bit.</summary>
    public static ushort[] PackWeights<TFormat>(ReadOnlySpan<float> weight, int outChannels, int inChannels, int kernel)
        where TFormat : struct, IHalfFormat
    {
        int taps = kernel * kernel;
        Require(weight.Length, (long)outChannels * inChannels * taps, "conv weight");
        int inPadded = PaddedChannels(inChannels);
        int depth = taps * inPadded;
        var packed = new ushort[checked(PaddedChannels(outChannels) * depth)];
        var format = default(TFormat);
        for (int o = 0; o < outChannels; o++)
        for (int c = 0; c < inChannels; c++)
        for (int tap = 0; tap < taps; tap++)
            packed[o * depth + tap * inPadded + c] = (ushort)format.Narrow(weight[(o * inChannels + c) * taps + tap]);
        return packed;
    }

    /// <summary>Bias [Cout] fp32, zero-padded to PaddedChannels(Cout).</summary>
    public static float[] PadBias(ReadOnlySpan<float> bias)
    {
        var padded = new float[PaddedChannels(bias.Length)];
        bias.CopyTo(padded);
        return padded;
    }

    private static void Require(long actual, long expected, string what)
    {
        if (actual != expected)
            throw new ArgumentException($"{what} has {actual} values where its shape needs {expected}");
    }
}
