using ILGPU.Runtime;
using NativeVae.Backends.Ilgpu;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Kernels;

/// <summary>One attention case in 16-bit storage: Q, K, V [B, C, H, W] with N = H * W tokens.</summary>
public sealed record HalfAttentionCase(string Name, int Batch, int Channels, int Height, int Width, float Scale)
{
    public override string ToString() => Name;
}

/// <summary>
/// The tensor-core attention (AttentionTensorCoreGpu) through the ILGPU backend's 16-bit storage, against the double
/// reference of the stored (rounded) Q, K and V: on ILGPU's CPU accelerator, where the mma.sync fallbacks run, and on
/// a CUDA GPU where one is present. Token counts straddle the 32-query and 64-key tiles and the 32-key V chunks;
/// channel counts run from one padded MMA depth (16) to the kernel's 512, and past it (the fp32 fallback).
/// </summary>
[NonParallelizable]
public sealed class AttentionTensorCoreTests
{
    private const ulong Seed = 29;

    /// <summary>
    /// The weights P and the output are each rounded once to the storage format, and the output is a convex
    /// combination of V in [-1, 1]: at most 2 half-ulps of 1 (bf16: 2^-8, fp16: 2^-11) plus fp32 noise, with a
    /// factor of two to spare.
    /// </summary>
    private const double Bf16Tolerance = 2.0 / 256, F16Tolerance = 2.0 / 2048;

    private static readonly HalfAttentionCase[] Shapes =
    [
        new("1 token, C=1", 1, 1, 1, 1, 1f),
        new("7x5 (35 tokens), C=64", 1, 64, 7, 5, 1 / MathF.Sqrt(64)),
        new("9x8 (72 tokens: two key tiles, three query tiles), batch 2, C=96", 2, 96, 9, 8, 1 / MathF.Sqrt(96)),
        new("13x10 (130 tokens: three key tiles), C=13, sharp softmax", 1, 13, 13, 10, 4f),
        new("11x7 (77 tokens), C=384 (Qwen-Image and the small FLUX.2 decoder)", 1, 384, 11, 7, 1 / MathF.Sqrt(384)),
        new("5x13 (65 tokens), C=512 (SD, FLUX and FLUX.2 mid-blocks)", 1, 512, 5, 13, 1 / MathF.Sqrt(512)),
        new("3x3, C=600 (wider than the kernel: the fp32 fallback)", 1, 600, 3, 3, 1 / MathF.Sqrt(600)),
    ];

    private static IlgpuBackend Backend(string device, DType dtype) =>
        TestBackends.Ilgpu(device == "cuda" ? DevicePreference.Cuda : DevicePreference.IlgpuCpu, dtype);

    private static IEnumerable<string> Devices => TestBackends.HasCuda ? ["ilgpu-cpu", "cuda"] : ["ilgpu-cpu"];

    private static IEnumerable<TestCaseData> Cases() =>
        from device in Devices
        from dtype in new[] { DType.BF16, DType.F16 }
        from c in Shapes
        select new TestCaseData(device, dtype, c).SetArgDisplayNames(device, dtype.ShortName(), c.Name);

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheReferenceOfTheStoredInputs(string device, DType dtype, HalfAttentionCase c)
    {
        var backend = Backend(device, dtype);
        var shape = TensorShape.Nchw(c.Batch, c.Channels, c.Height, c.Width);
        // Q and K spread wider than [-1, 1] so that the running max moves between key tiles.
        using var q = backend.Upload(Values(c.Name + ".q", shape, 2), shape, dtype);
        using var k = backend.Upload(Values(c.Name + ".k", shape, 2), shape, dtype);
        using var v = backend.Upload(Values(c.Name + ".v", shape, 1), shape, dtype);
        double[] expected = Reference.Attention(Stored(backend, q), Stored(backend, k), Stored(backend, v), c.Batch,
            c.Channels, c.Height * c.Width, c.Scale);

        using var y = backend.Attention(q, k, v, c.Scale);
        Assert.That(y.DType, Is.EqualTo(dtype), "attention over 16-bit feature maps stores a 16-bit result");
        NumericAssert.Close(Stored(backend, y), expected, shape, dtype == DType.BF16 ? Bf16Tolerance : F16Tolerance, 0,
            $"tensor-core attention {device} {dtype.ShortName()} {c.Name}");
    }

    [Test]
    public void OutputBufferContentsDoNotLeakIn()
    {
        // The kernel writes every stored word of its output, padding channels included; a pooled buffer full of
        // NaN must not show through, in the real channels or as padding the next conv would read.
        var backend = Backend("ilgpu-cpu", DType.BF16);
        var shape = TensorShape.Nchw(1, 20, 3, 3);
        using var x = backend.Upload(Values("leak", shape, 1), shape, DType.BF16);
        using (backend.Upload(Enumerable.Repeat(float.NaN, (int)shape.ElementCount).ToArray(), shape, DType.BF16)) { }
        using var y = backend.Attention(x, x, x, 1f);
        var stored = Stored(backend, x);
        double[] expected = Reference.Attention(stored, stored, stored, 1, 20, 9, 1);
        NumericAssert.Close(Stored(backend, y), expected, shape, Bf16Tolerance, 0, "tensor-core attention over a NaN buffer");
        var words = new uint[((IlgpuTensor)y).Words.Length];
        ((IlgpuTensor)y).Words.CopyToCPU(words);
        const int PaddedChannels = 32;
        for (int pixel = 0; pixel < 9; pixel++)
        for (int c = 20; c < PaddedChannels; c++)
        {
            uint word = words[(pixel * PaddedChannels + c) / 2];
            uint bits = c % 2 == 0 ? word & 0xFFFF : word >> 16;
            Assert.That(bits, Is.Zero, $"padding channel {c} of pixel {pixel} is not zero");
        }
    }

    private static float[] Values(string name, TensorShape shape, float spread) =>
        SeededWeights.Uniform(Seed, name, shape.ElementCount).Select(x => spread * x).ToArray();

    private static float[] Stored(IlgpuBackend backend, Tensor t)
    {
        var values = new float[t.Shape.ElementCount];
        backend.Download(t, values);
        return values;
    }
}
