using ILGPU;

namespace NativeVae.Kernels.Gpu;

/// <summary>
/// A 16-bit storage format on the device: how its bits widen to fp32 and narrow from it, and the tensor-core
/// instruction that multiplies it. Kernels take the format as a struct type parameter, so each format compiles to
/// its own straight-line code. Bits travel as the low 16 bits of a uint (ILGPU's inline PTX takes scalars).
/// </summary>
internal interface IHalfFormat
{
    /// <summary>The value of 16 stored bits.</summary>
    float Widen(uint bits);

    /// <summary>The stored bits of the nearest value (ties to even); overflow goes to infinity, NaN stays NaN.</summary>
    uint Narrow(float value);

    /// <summary>One warp's 16 x 8 x 16 tile product in this format, fp32 accumulators (see <see cref="WarpMma"/>).</summary>
    void Mma(ref MmaAccumulator c, in MmaFragmentA a, in MmaFragmentB b);
}

/// <summary>Two 16-bit elements in one word, the first (lower channel, lower index) in the low half.</summary>
internal static class HalfWords
{
    private const int HalfBits = 16;
    private const uint LowHalfMask = 0xFFFF;

    public static uint Low(uint word) => word & LowHalfMask;

    public static uint High(uint word) => word >> HalfBits;

    public static uint Pack(uint low, uint high) => (low & LowHalfMask) | (high << HalfBits);
}

/// <summary>bfloat16: fp32's sign and exponent, 7 stored mantissa bits. FLUX and the TAESD family store in it.</summary>
internal struct Bf16Format : IHalfFormat
{
    private const int ShiftToFloat = 16;
    private const uint AbsoluteMask = 0x7FFF_FFFF;
    private const uint FloatInfinity = 0x7F80_0000;
    private const uint QuietBit = 0x40;
    private const uint RoundingBias = 0x7FFF;

    public readonly float Widen(uint bits) => Interop.IntAsFloat(bits << ShiftToFloat);

    public readonly uint Narrow(float value)
    {
        uint u = Interop.FloatAsInt(value);
        if ((u & AbsoluteMask) > FloatInfinity) return (u >> ShiftToFloat) | QuietBit;
        return (u + RoundingBias + ((u >> ShiftToFloat) & 1)) >> ShiftToFloat;
    }

    public readonly void Mma(ref MmaAccumulator c, in MmaFragmentA a, in MmaFragmentB b) => WarpMma.Bf16(ref c, a, b);
}

/// <summary>IEEE binary16: 5 exponent bits, 10 mantissa bits, largest finite 65504. SD 1.x and SDXL's fp16-fix VAE store in it.</summary>
internal struct F16Format : IHalfFormat
{
    private const uint SignMask = 0x8000;
    private const uint ExponentMask = 0x1F;
    private const uint MantissaMask = 0x3FF;
    private const int MantissaBits = 10;
    private const int FloatMantissaBits = 23;
    private const int MantissaShift = FloatMantissaBits - MantissaBits;
    /// <summary>fp32's exponent bias minus binary16's (127 - 15).</summary>
    private const uint BiasDifference = 112;
    private const uint HalfInfinity = 0x7C00;
    private const uint HalfQuietBit = 0x200;
    private const uint FloatInfinity = 0x7F80_0000;
    private const uint AbsoluteMask = 0x7FFF_FFFF;
    /// <summary>65520 as fp32: from here up, binary16 rounds to infinity.</summary>
    private const uint OverflowThreshold = 0x477F_F000;
    /// <summary>2^-14 as fp32: binary16's smallest normal.</summary>
    private const uint SmallestNormal = 0x3880_0000;
    /// <summary>2^-24: binary16's subnormal step.</summary>
    private const float SubnormalStep = 5.9604645e-8f;
    /// <summary>2^24, and 2^23 whose fp32 ulp is 1: adding it rounds a value below 2^23 to an integer (ties to even).</summary>
    private const float InverseSubnormalStep = 16777216f;
    private const float RoundToInteger = 8388608f;
    private const uint RoundToIntegerBits = 0x4B00_0000;
    private const uint RoundingBias = 0xFFF;

    public readonly float Widen(uint bits)
    {
        uint sign = (bits & SignMask) << 16;
        uint exponent = (bits >> MantissaBits) & ExponentMask;
        uint mantissa = bits & MantissaMask;
        if (exponent == 0)
        {
            float subnormal = mantissa * SubnormalStep;
            return sign != 0 ? -subnormal : subnormal;
        }
        if (exponent == ExponentMask) return Interop.IntAsFloat(sign | FloatInfinity | (mantissa << MantissaShift));
        return Interop.IntAsFloat(sign | ((exponent + BiasDifference) << FloatMantissaBits) | (mantissa << MantissaShift));
    }

    public readonly uint Narrow(float value)
    {
        uint u = Interop.FloatAsInt(value);
        uint sign = (u >> 16) & SignMask;
        u &= AbsoluteMask;
        if (u > FloatInfinity) return sign | HalfInfinity | HalfQuietBit;
        if (u >= OverflowThreshold) return sign | HalfInfinity;
        if (u < SmallestNormal)
        {
            // A binary16 subnormal: the integer count of 2^-24 steps, rounded to even by fp32 addition. A count
            // of 1024 is the smallest normal's encoding, so rounding up into it needs no special case.
            float steps = Interop.IntAsFloat(u) * InverseSubnormalStep;
            return sign | (Interop.FloatAsInt(steps + RoundToInteger) - RoundToIntegerBits);
        }
        uint rebiased = u - (BiasDifference << FloatMantissaBits);
        return sign | ((rebiased + RoundingBias + ((rebiased >> MantissaShift) & 1)) >> MantissaShift);
    }

    public readonly void Mma(ref MmaAccumulator c, in MmaFragmentA a, in MmaFragmentB b) => WarpMma.F16(ref c, a, b);
}
