using NativeVae.Kernels.Cpu;

namespace NativeVae.Tiling;

/// <summary>An activation medium's kept elements (fp32 or 16-bit bytes) to and from the fp32 values it is read and written as.</summary>
internal static class ElementConversion
{
    /// <summary><paramref name="values"/>[i] = <paramref name="stored"/>'s element i, kept as <paramref name="kept"/>.</summary>
    public static unsafe void Widen(DType kept, ReadOnlySpan<byte> stored, Span<float> values)
    {
        RequireSizes(kept, stored.Length, values.Length);
        fixed (byte* s = stored)
        fixed (float* v = values)
            StorageConversion.Widen(StorageOf(kept), s, 0, v, values.Length);
    }

    /// <summary><paramref name="stored"/>'s element i = <paramref name="values"/>[i] kept as <paramref name="kept"/> (rounded to nearest even).</summary>
    public static unsafe void Narrow(DType kept, ReadOnlySpan<float> values, Span<byte> stored)
    {
        RequireSizes(kept, stored.Length, values.Length);
        fixed (float* v = values)
        fixed (byte* s = stored)
            StorageConversion.Narrow(StorageOf(kept), v, s, 0, values.Length);
    }

    /// <summary>The kernels' name for a kept dtype (Tiling may not reach the CPU backend's mapping).</summary>
    private static StorageType StorageOf(DType kept) =>
        kept == DType.F32 ? StorageType.F32 : kept == DType.F16 ? StorageType.F16 : StorageType.BF16;

    private static void RequireSizes(DType kept, int bytes, int values)
    {
        if (bytes != (long)values * kept.ByteSize())
            throw new ArgumentException($"{bytes} bytes of {kept.ShortName()} elements do not hold {values} values");
    }
}
