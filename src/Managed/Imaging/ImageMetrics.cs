namespace NativeVae.Imaging;

/// <summary>Image quality measures.</summary>
internal static class ImageMetrics
{
    private const double Peak = 255.0;

    /// <summary>The peak-to-peak range of the API's pixels, [-1, 1].</summary>
    private const double UnitRange = 2.0;

    /// <summary>Peak signal-to-noise ratio in dB between two 8-bit images of equal length (infinity when equal).</summary>
    public static double Psnr(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"PSNR of images of {a.Length} and {b.Length} bytes");
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = a[i] - b[i];
            sum += d * d;
        }
        return FromSquaredError(sum, a.Length, Peak);
    }

    /// <summary>PSNR in dB between two tensors of pixels in [-1, 1] (each clamped to it), infinity when equal.</summary>
    public static double Psnr(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"PSNR of tensors of {a.Length} and {b.Length} values");
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = Math.Clamp(a[i], -1f, 1f) - (double)Math.Clamp(b[i], -1f, 1f);
            sum += d * d;
        }
        return FromSquaredError(sum, a.Length, UnitRange);
    }

    private static double FromSquaredError(double sum, int count, double peak)
    {
        if (count == 0) throw new ArgumentException("PSNR of empty images");
        double mse = sum / count;
        return mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(peak * peak / mse);
    }
}
