using NativeVae.Backends.Ilgpu;
using NativeVae.Core;

namespace NativeVae.Tests.Backends;

/// <summary>
/// The ILGPU backend's 16-bit tensors as stored (NHWC, channels padded to the tensor cores' 16): an upload is the
/// fp32 data rounded once to the format and comes back unchanged, the padding costs what it should, and a tensor the
/// layout cannot hold is refused by name. The ops are the whole-model tests' (SixteenBitStorageTests).
/// </summary>
[TestFixture]
internal sealed class IlgpuHalfStorageTests
{
    [TestCase(DType.BF16)]
    [TestCase(DType.F16)]
    public void AnUploadComesBackRoundedOnceToTheFormat(DType dtype)
    {
        var backend = (IlgpuBackend)TestBackends.Get("ilgpu-cpu");
        var shape = new TensorShape(2, 21, 3, 5);
        var random = new Random(7);
        var data = Enumerable.Range(0, (int)shape.ElementCount).Select(_ => (float)(random.NextDouble() * 8 - 4)).ToArray();
        using var tensor = backend.Upload(data, shape, dtype);
        var back = new float[data.Length];
        backend.Download(tensor, back);
        var expected = data.Select(v => dtype == DType.BF16 ? Bf16(v) : (float)(Half)v).ToArray();
        Assert.That(back, Is.EqualTo(expected), "each value is the fp32 value rounded to nearest even, nothing else");
        long padded = 2L * 3 * 5 * 32 * sizeof(ushort);
        Assert.That(((IlgpuTensor)tensor).StoredBytes, Is.EqualTo(padded), "21 channels are stored as 32");
    }

    [Test]
    public void ASixteenBitTensorThatIsNotFourDimensionalIsRefused()
    {
        var backend = (IlgpuBackend)TestBackends.Get("ilgpu-cpu");
        var e = Assert.Throws<NotSupportedException>(() => backend.Allocate(new TensorShape(4, 6), DType.BF16));
        Assert.That(e!.Message, Does.Contain("bf16").And.Contain("4-D NHWC").And.Contain("[4, 6]"));
    }

    /// <summary>
    /// Exact tiling asks a 16-bit activation for its group statistics: they come back fp32 [N, G, 2] (mean, M2),
    /// as the fp32 op gives them for the same (rounded) values; a 3-D result is never stored in 16 bits.
    /// </summary>
    [Test]
    public void GroupStatisticsOfASixteenBitTensorAreFp32()
    {
        // A backend that stores bf16, as exact tiling with --dtype bf16 runs on.
        var backend = TestBackends.Ilgpu(DevicePreference.IlgpuCpu, DType.BF16);
        var shape = new TensorShape(1, 32, 3, 5);
        var random = new Random(11);
        var data = Enumerable.Range(0, (int)shape.ElementCount).Select(_ => Bf16((float)(random.NextDouble() * 2 - 1))).ToArray();
        using var half = backend.Upload(data, shape, DType.BF16);
        using var single = backend.Upload(data, shape);
        using var fromHalf = backend.GroupNormStatistics(half, Groups);
        using var fromSingle = backend.GroupNormStatistics(single, Groups);
        Assert.That(fromHalf.DType, Is.EqualTo(DType.F32));
        Assert.That(fromHalf.Shape, Is.EqualTo(new TensorShape(1, Groups, 2)));
        var expected = new float[Groups * 2];
        var actual = new float[Groups * 2];
        backend.Download(fromSingle, expected);
        backend.Download(fromHalf, actual);
        Assert.That(actual, Is.EqualTo(expected), "the same values give the same statistics");
    }

    private const int Groups = 8;

    /// <summary>bf16 by rounding the fp32 bits to nearest even (the values here are finite).</summary>
    private static float Bf16(float v)
    {
        uint bits = BitConverter.SingleToUInt32Bits(v);
        bits += 0x7FFF + ((bits >> 16) & 1);
        return BitConverter.UInt32BitsToSingle(bits & 0xFFFF_0000);
    }
}
