using System.Runtime.InteropServices;

namespace NativeVae.Formats;

/// <summary>Conversions between fp32 and the little-endian storage dtypes.</summary>
internal static class DTypeConversion
{
    public static void ToFloat32(DType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (dtype)
        {
            case DType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case DType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(source);
                for (int i = 0; i < destination.Length; i++) destination[i] = (float)halves[i];
                break;
            case DType.BF16:
                var raw = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < destination.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(raw[i] << 16);
                break;
            default:
                throw new NotSupportedException($"dtype {dtype}");
        }
    }

    public static byte[] FromFloat32(DType dtype, ReadOnlySpan<float> source)
    {
        var bytes = new byte[checked((long)source.Length * dtype.ByteSize())];
        switch (dtype)
        {
            case DType.F32:
                MemoryMarshal.AsBytes(source).CopyTo(bytes);
                break;
            case DType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                for (int i = 0; i < source.Length; i++) halves[i] = (Half)source[i];
                break;
            case DType.BF16:
                var raw = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (int i = 0; i < source.Length; i++) raw[i] = ToBFloat16RoundNearestEven(source[i]);
                break;
            default:
                throw new NotSupportedException($"dtype {dtype}");
        }
        return bytes;
    }

    /// <summary>fp32 to bf16 with round-to-nearest-even, NaN kept quiet (as PyTorch does).</summary>
    public static ushort ToBFloat16RoundNearestEven(float value)
    {
        const uint QuietNanBf16 = 0x7FC0;
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)(QuietNanBf16 | (bits >> 31 << 15));
        uint roundingBias = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }
}
