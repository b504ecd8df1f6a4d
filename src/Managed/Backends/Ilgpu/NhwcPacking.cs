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

    /// <summary>
    /// A 3x3 weight [Cout, Cin, 3, 3] of a conv over a nearest-2x-upsampled input, as the 4 sub-pixel phases' 2x2
    /// weights [4, PaddedChannels(Cout), 2 * 2, PaddedChannels(Cin)] (phase = 2 py + px, tap = 2 dy + dx). Output
    /// row 2y + py reads upsampled rows 2y + py - 1 .. 2y + py + 1, which are input rows y + py - 1 + dy: kernel
    /// rows {0} and {1, 2} for py = 0, {0, 1} and {2} for py = 1; columns alike. The taps that read the same input
    /// pixel are summed in fp32, then rounded once to 16 bits.
    /// </summary>
    public static ushort[] PackSubPixelWeights<TFormat>(ReadOnlySpan<float> weight, int outChannels, int inChannels)
        where TFormat : struct, IHalfFormat
    {
        const int Kernel = 3, Taps = Kernel * Kernel, PhaseTaps = 4;
        Require(weight.Length, (long)outChannels * inChannels * Taps, "sub-pixel conv weight");
        int inPadded = PaddedChannels(inChannels);
        int outPadded = PaddedChannels(outChannels);
        int depth = PhaseTaps * inPadded;
        var packed = new ushort[checked(PhaseTaps * outPadded * depth)];
        var format = default(TFormat);
        for (int phase = 0; phase < PhaseTaps; phase++)
        for (int o = 0; o < outChannels; o++)
        for (int c = 0; c < inChannels; c++)
        for (int tap = 0; tap < PhaseTaps; tap++)
        {
            var (rowFirst, rowLast) = PhaseKernelTaps(phase / 2, tap / 2);
            var (columnFirst, columnLast) = PhaseKernelTaps(phase % 2, tap % 2);
            float sum = 0;
            for (int ky = rowFirst; ky <= rowLast; ky++)
            for (int kx = columnFirst; kx <= columnLast; kx++)
                sum += weight[(o * inChannels + c) * Taps + ky * Kernel + kx];
            packed[(phase * outPadded + o) * depth + tap * inPadded + c] = (ushort)format.Narrow(sum);
        }
        return packed;
    }

    /// <summary>The 3x3 kernel rows (or columns) that phase parity <paramref name="parity"/>'s tap <paramref name="tap"/> sums.</summary>
    private static (int First, int Last) PhaseKernelTaps(int parity, int tap) => (parity, tap) switch
    {
        (0, 0) => (0, 0),
        (0, _) => (1, 2),
        (_, 0) => (0, 1),
        _ => (2, 2),
    };

    /// <summary>Bias [Cout] fp32, zero-padded to PaddedChannels(Cout).</summary>
    public static float[] PadBias(ReadOnlySpan<float> bias)
    {
        var padded = new float[PaddedChannels(bias.Length)];
        bias.CopyTo(padded);
        return padded;
    }

    /// <summary>16-bit elements as the words the kernels read: element 2i in the low half of word i.</summary>
    public static uint[] ToWords(ReadOnlySpan<ushort> halves)
    {
        if (halves.Length % 2 != 0) throw new ArgumentException($"{halves.Length} 16-bit elements do not fill whole words", nameof(halves));
        var words = new uint[halves.Length / 2];
        for (int i = 0; i < words.Length; i++) words[i] = HalfWords.Pack(halves[2 * i], halves[2 * i + 1]);
        return words;
    }

    /// <summary>The inverse of <see cref="ToWords"/>.</summary>
    public static ushort[] FromWords(ReadOnlySpan<uint> words)
    {
        var halves = new ushort[words.Length * 2];
        for (int i = 0; i < words.Length; i++)
        {
            halves[2 * i] = (ushort)HalfWords.Low(words[i]);
            halves[2 * i + 1] = (ushort)HalfWords.High(words[i]);
        }
        return halves;
    }

    private static void Require(long actual, long expected, string what)
    {
        if (actual != expected)
            throw new ArgumentException($"{what} has {actual} values where its shape needs {expected}");
    }
}
