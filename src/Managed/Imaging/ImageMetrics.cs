namespace NativeVae.Imaging;

/// <summary>Image quality measures.</summary>
internal static class ImageMetrics
{
    private const double Peak = 255.0;

    /// <summary>Peak signal-to-noise ratio in dB between two 8-bit images of equal length (infinity when equal).</summary>
    public static double Psnr(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"PSNR of images of {a.Length} and {b.Length} bytes");
        if (a.Length == 0) throw new ArgumentException("PSNR of empty images");
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = a[i] - b[i];
            sum += d * d;
        }
        double mse = sum / a.Length;
        return mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(Peak * Peak / mse);
    }
}
