using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NativeVae.Kernels.Cpu;

/// <summary>How a CPU tensor's elements are stored. Kernels always compute and accumulate in fp32.</summary>
internal enum StorageType : byte
{
    F32,
    F16,
    BF16,
}

/// <summary>
/// A kernel's view of one tensor: its base address and storage type. 16-bit tensors are widened to fp32 where a
/// kernel reads them (a row or chunk at a time, into its own scratch) and narrowed, rounding to nearest even, where
/// it writes them, so no fp32 copy of a whole 16-bit tensor is ever made.
/// </summary>
internal readonly unsafe struct StoredElements(void* data, StorageType type)
{
    public readonly byte* Data = (byte*)data;
    public readonly StorageType Type = type;

    public bool IsNull => Data == null;

    public bool IsF32 => Type == StorageType.F32;

    /// <summary>The elements as fp32 (F32 storage only).</summary>
    public float* F32 => IsF32 ? (float*)Data : throw new InvalidOperationException($"a {Type} tensor read as fp32");

    /// <summary>One element, widened (for loops that gather, such as weight packing).</summary>
    public float this[long index] => Type switch
    {
        StorageType.F32 => ((float*)Data)[index],
        StorageType.F16 => (float)((Half*)Data)[index],
        _ => StorageConversion.FromBFloat16(((ushort*)Data)[index]),
    };

    /// <summary>dst[i] = element <paramref name="index"/> + i, for i in [0, count).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Read(long index, float* dst, int count) => StorageConversion.Widen(Type, Data, index, dst, count);

    /// <summary>Element <paramref name="index"/> + i = src[i], for i in [0, count).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Write(long index, float* src, int count) => StorageConversion.Narrow(Type, src, Data, index, count);

    /// <summary>
    /// Elements [index, index + count) as fp32: a pointer into the tensor itself when it is F32, else
    /// <paramref name="scratch"/> (count floats) with the elements widened into it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float* ReadOrPoint(long index, float* scratch, int count)
    {
        if (IsF32) return (float*)Data + index;
        Read(index, scratch, count);
        return scratch;
    }

    /// <summary>
    /// The row starting at element <paramref name="rowStart"/>, valid in columns [lo, hi): a pointer into the tensor
    /// when it is F32, else those columns widened into <paramref name="scratch"/> (hi - lo floats) and the pointer
    /// offset so that column c is still at [c]. For packing loops that read a window of each row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float* RowWindow(long rowStart, int lo, int hi, float* scratch)
    {
        if (IsF32) return (float*)Data + rowStart;
        Read(rowStart + lo, scratch, hi - lo);
        return scratch - lo;
    }

    /// <summary>The view of elements from <paramref name="index"/> on.</summary>
    public StoredElements At(long index) => new(Data + index * Type.ByteSize(), Type);
}

/// <summary>fp32 to and from the 16-bit storage types, vectorised.</summary>
internal static unsafe class StorageConversion
{
    private const int BFloat16Shift = 16;
    private const uint BFloat16RoundingBias = 0x7FFF;
    private const uint Fp32AbsMask = 0x7FFF_FFFF;
    private const uint Fp32Infinity = 0x7F80_0000;

    /// <summary>Set in a NaN's bf16 pattern so that truncating the mantissa cannot turn it into an infinity.</summary>
    private const ushort BFloat16QuietBit = 0x0040;

    public static int ByteSize(this StorageType type) => type == StorageType.F32 ? sizeof(float) : sizeof(ushort);

    /// <summary>dst[i] = (float)src[offset + i].</summary>
    public static void Widen(StorageType type, void* src, long offset, float* dst, int count)
    {
        switch (type)
        {
            case StorageType.F32:
                Buffer.MemoryCopy((float*)src + offset, dst, (long)count * sizeof(float), (long)count * sizeof(float));
                break;
            case StorageType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)src + offset, count), new Span<float>(dst, count));
                break;
            case StorageType.BF16:
                WidenBFloat16((ushort*)src + offset, dst, count);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unknown storage type");
        }
    }

    /// <summary>dst[offset + i] = src[i] rounded to the storage type (nearest, ties to even; NaN stays NaN).</summary>
    public static void Narrow(StorageType type, float* src, void* dst, long offset, int count)
    {
        switch (type)
        {
            case StorageType.F32:
                Buffer.MemoryCopy(src, (float*)dst + offset, (long)count * sizeof(float), (long)count * sizeof(float));
                break;
            case StorageType.F16:
                TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(src, count), new Span<Half>((Half*)dst + offset, count));
                break;
            case StorageType.BF16:
                NarrowBFloat16(src, (ushort*)dst + offset, count);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unknown storage type");
        }
    }

    /// <summary>One value to bf16, as <see cref="Narrow"/> rounds it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort ToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if ((bits & Fp32AbsMask) > Fp32Infinity) return (ushort)((bits >> BFloat16Shift) | BFloat16QuietBit);
        return (ushort)((bits + BFloat16RoundingBias + ((bits >> BFloat16Shift) & 1)) >> BFloat16Shift);
    }

    /// <summary>One bf16 value to fp32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FromBFloat16(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << BFloat16Shift);

    private static void WidenBFloat16(ushort* src, float* dst, int count)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + Vector256<ushort>.Count <= count; i += Vector256<ushort>.Count)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(src + i));
                Vector256.ShiftLeft(lo, BFloat16Shift).AsSingle().Store(dst + i);
                Vector256.ShiftLeft(hi, BFloat16Shift).AsSingle().Store(dst + i + Vector256<uint>.Count);
            }
        }
        for (; i < count; i++) dst[i] = FromBFloat16(src[i]);
    }

    private static void NarrowBFloat16(float* src, ushort* dst, int count)
    {
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + Vector256<ushort>.Count <= count; i += Vector256<ushort>.Count)
            {
                var lo = RoundToBFloat16(Vector256.Load(src + i).AsUInt32());
                var hi = RoundToBFloat16(Vector256.Load(src + i + Vector256<uint>.Count).AsUInt32());
                Vector256.Narrow(lo, hi).Store(dst + i);
            }
        }
        for (; i < count; i++) dst[i] = ToBFloat16(src[i]);
    }

    /// <summary>Each lane's bf16 pattern in its low 16 bits, as <see cref="ToBFloat16"/> computes it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<uint> RoundToBFloat16(Vector256<uint> bits)
    {
        var lsb = Vector256.ShiftRightLogical(bits, BFloat16Shift) & Vector256<uint>.One;
        var rounded = Vector256.ShiftRightLogical(bits + Vector256.Create(BFloat16RoundingBias) + lsb, BFloat16Shift);
        var nan = Vector256.GreaterThan(bits & Vector256.Create(Fp32AbsMask), Vector256.Create(Fp32Infinity));
        var quiet = Vector256.ShiftRightLogical(bits, BFloat16Shift) | Vector256.Create((uint)BFloat16QuietBit);
        return Vector256.ConditionalSelect(nan, quiet, rounded);
    }
}
