using NativeVae.Kernels.Cpu;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// fp32 to and from fp16/bf16 (<see cref="StorageConversion"/>), vector body and scalar tail, against scalar
/// references: System.Half for fp16, and for bf16 the exact round-to-nearest-even computed in double.
/// </summary>
public sealed unsafe class StorageConversionTests
{
    /// <summary>Values that exercise rounding: ties, near-ties, subnormals, overflow to infinity, signed zeros, NaN.</summary>
    private static float[] Edgy()
    {
        var values = new List<float>
        {
            0f, -0f, 1f, -1f, 65504f, 65520f, 1e6f, -1e6f, 6e-8f, 3e-8f, 1e-40f, -1e-40f, float.Epsilon,
            float.MaxValue, float.MinValue, float.PositiveInfinity, float.NegativeInfinity, float.NaN,
            BitConverter.UInt32BitsToSingle(0x7F80_0001), // a signalling NaN whose payload is all below bf16's mantissa
            BitConverter.UInt32BitsToSingle(0x3F80_8000), // 1 + 2^-8: a bf16 tie, rounds to even (1)
            BitConverter.UInt32BitsToSingle(0x3F81_8000), // a bf16 tie that rounds up
            BitConverter.UInt32BitsToSingle(0x3F80_8001), // just past a tie
            BitConverter.UInt32BitsToSingle(0x7F7F_FFFF), // bf16 rounds to infinity
        };
        var random = new Random(7);
        for (int i = 0; i < 997; i++) values.Add((float)((random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-30, 30))));
        return values.ToArray();
    }

    private static ushort BFloat16Reference(float value)
    {
        if (float.IsNaN(value)) return 0x7FC0;
        uint bits = BitConverter.SingleToUInt32Bits(value);
        uint low = bits & 0xFFFF, high = bits >> 16;
        // Nearest of the two bf16 neighbours, ties to the even one, by integer comparison of the dropped half.
        if (low > 0x8000 || (low == 0x8000 && (high & 1) == 1)) high++;
        return (ushort)high;
    }

    [TestCase(1)]
    [TestCase(15)]
    [TestCase(16)]
    [TestCase(1020)]
    public void BFloat16RoundsToNearestEven(int count)
    {
        var values = Edgy().Take(count).ToArray();
        var narrow = new ushort[count];
        var wide = new float[count];
        fixed (float* v = values)
        fixed (ushort* n = narrow)
        fixed (float* w = wide)
        {
            StorageConversion.Narrow(StorageType.BF16, v, n, 0, count);
            StorageConversion.Widen(StorageType.BF16, n, 0, w, count);
        }
        for (int i = 0; i < count; i++)
        {
            if (float.IsNaN(values[i]))
            {
                Assert.That(float.IsNaN(wide[i]), $"NaN {BitConverter.SingleToUInt32Bits(values[i]):X8} stays NaN in bf16, got {narrow[i]:X4}");
                continue;
            }
            Assert.That(narrow[i], Is.EqualTo(BFloat16Reference(values[i])), $"bf16 of {values[i]:R} ({BitConverter.SingleToUInt32Bits(values[i]):X8})");
            Assert.That(wide[i], Is.EqualTo(BitConverter.UInt32BitsToSingle((uint)narrow[i] << 16)), "widening is exact");
        }
    }

    [TestCase(1)]
    [TestCase(15)]
    [TestCase(1020)]
    public void Float16MatchesSystemHalf(int count)
    {
        var values = Edgy().Take(count).ToArray();
        var narrow = new Half[count];
        var wide = new float[count];
        fixed (float* v = values)
        fixed (Half* n = narrow)
        fixed (float* w = wide)
        {
            StorageConversion.Narrow(StorageType.F16, v, n, 0, count);
            StorageConversion.Widen(StorageType.F16, n, 0, w, count);
        }
        for (int i = 0; i < count; i++)
        {
            var expected = (Half)values[i];
            if (Half.IsNaN(expected))
            {
                Assert.That(Half.IsNaN(narrow[i]), $"NaN stays NaN in fp16 at {i}");
                continue;
            }
            Assert.That(BitConverter.HalfToUInt16Bits(narrow[i]), Is.EqualTo(BitConverter.HalfToUInt16Bits(expected)), $"fp16 of {values[i]:R}");
            Assert.That(wide[i], Is.EqualTo((float)narrow[i]), "widening is exact");
        }
    }

    [Test]
    public void OffsetsAddressElementsNotBytes()
    {
        var values = new float[] { 1.5f, -2.25f, 3f };
        var narrow = new ushort[8];
        var back = new float[3];
        fixed (float* v = values)
        fixed (ushort* n = narrow)
        fixed (float* b = back)
        {
            StorageConversion.Narrow(StorageType.BF16, v, n, 5, 3);
            StorageConversion.Widen(StorageType.BF16, n, 5, b, 3);
            var view = new StoredElements(n, StorageType.BF16);
            Assert.That(view[6], Is.EqualTo(-2.25f), "the indexer widens element 6");
        }
        Assert.That(narrow[..5], Is.All.EqualTo((ushort)0), "elements before the offset are untouched");
        Assert.That(back, Is.EqualTo(values), "values exact in bf16 round-trip");
    }
}
