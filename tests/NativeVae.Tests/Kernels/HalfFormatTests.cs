using NativeVae.Kernels.Cpu;
using NativeVae.Kernels.Gpu;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// The device's 16-bit conversions (bit arithmetic that runs in kernels) against .NET's: System.Half for fp16, the
/// CPU backend's bf16 rounding for bf16. Every 16-bit pattern widens exactly; narrowing is checked on edge values
/// (ties, subnormals, overflow, NaN) and a million seeded floats across the exponent range.
/// </summary>
public sealed class HalfFormatTests
{
    private const int RandomValues = 1_000_000;
    private const int Seed = 24;

    [Test]
    public void EveryFp16PatternWidensAsSystemHalf()
    {
        var format = default(F16Format);
        for (uint bits = 0; bits <= ushort.MaxValue; bits++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)bits);
            float actual = format.Widen(bits);
            if (float.IsNaN(expected)) Assert.That(float.IsNaN(actual), $"0x{bits:X4} should widen to NaN");
            else Assert.That(BitConverter.SingleToInt32Bits(actual), Is.EqualTo(BitConverter.SingleToInt32Bits(expected)), $"0x{bits:X4}");
        }
    }

    [Test]
    public void EveryBf16PatternWidensToItsUpperHalf()
    {
        var format = default(Bf16Format);
        for (uint bits = 0; bits <= ushort.MaxValue; bits++)
            Assert.That(BitConverter.SingleToUInt32Bits(format.Widen(bits)), Is.EqualTo(bits << 16), $"0x{bits:X4}");
    }

    private static IEnumerable<float> Values()
    {
        float[] edges =
        [
            0f, -0f, 1f, -1f, 65504f, 65519.99f, 65520f, -65520f, 1e9f, float.PositiveInfinity, float.NegativeInfinity,
            float.NaN, 6.1035156e-5f, 6.1e-5f, 5.9604645e-8f, 2.9802322e-8f, 2.9802326e-8f, 8.940697e-8f, 1e-10f,
            float.Epsilon, float.MaxValue, -float.MaxValue, 1.0009765625f, 1.00048828125f, 1.00146484375f,
            1.00390625f, 1.001953125f, 1.005859375f, 3.3895314e38f, 3.4e38f,
        ];
        foreach (float edge in edges) yield return edge;
        var random = new Random(Seed);
        for (int i = 0; i < RandomValues; i++)
            yield return BitConverter.Int32BitsToSingle(random.Next(int.MinValue, int.MaxValue));
    }

    [Test]
    public void Fp16NarrowsAsSystemHalf()
    {
        var format = default(F16Format);
        foreach (float value in Values())
        {
            ushort expected = BitConverter.HalfToUInt16Bits((Half)value);
            uint actual = format.Narrow(value);
            if (float.IsNaN(value)) Assert.That(Half.IsNaN(BitConverter.UInt16BitsToHalf((ushort)actual)), $"{value} should narrow to NaN");
            else Assert.That(actual, Is.EqualTo(expected), $"{value:R} (0x{BitConverter.SingleToUInt32Bits(value):X8})");
        }
    }

    [Test]
    public void Bf16NarrowsAsTheCpuBackend()
    {
        var format = default(Bf16Format);
        foreach (float value in Values())
        {
            ushort expected = StorageConversion.ToBFloat16(value);
            uint actual = format.Narrow(value);
            if (float.IsNaN(value)) Assert.That(float.IsNaN(format.Widen(actual)), $"{value} should narrow to NaN");
            else Assert.That(actual, Is.EqualTo(expected), $"{value:R} (0x{BitConverter.SingleToUInt32Bits(value):X8})");
        }
    }
}
