namespace NativeVae.PeerBench;

/// <summary>The children's outputs (raw fp32) compared element by element.</summary>
internal static class OutputFiles
{
    /// <summary>Max |a - b| and max |b| over the two files; fails if their lengths differ.</summary>
    public static (double MaxAbsDiff, double MaxAbsReference) Compare(string nativeVae, string libtorch)
    {
        float[] a = Read(nativeVae), b = Read(libtorch);
        if (a.Length != b.Length)
            throw new InvalidOperationException($"outputs differ in length: NativeVae {a.Length} values, libtorch {b.Length}");
        double maxDiff = 0, maxReference = 0;
        for (int i = 0; i < a.Length; i++)
        {
            // A NaN on either side must show, not vanish in Math.Max.
            double d = Math.Abs((double)a[i] - b[i]);
            maxDiff = double.IsNaN(d) ? double.NaN : Math.Max(maxDiff, d);
            maxReference = Math.Max(maxReference, Math.Abs(b[i]));
            if (double.IsNaN(maxDiff)) break;
        }
        return (maxDiff, maxReference);
    }

    private static float[] Read(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        var values = new float[bytes.Length / sizeof(float)];
        Buffer.BlockCopy(bytes, 0, values, 0, values.Length * sizeof(float));
        return values;
    }
}
