using NativeVae.Backends.Cpu;
using NativeVae.Backends.Ilgpu;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Kernels;

/// <summary>One RMS norm case over [N, C, H, W]; inputs in [-2, 2] around <paramref name="Offset"/>.</summary>
public sealed record RmsNormCase(string Name, int Batch, int Channels, int Height, int Width, bool Silu, float Offset = 0.5f)
{
    private const ulong Seed = 13;

    public override string ToString() => Name;

    internal TensorShape Shape => TensorShape.Nchw(Batch, Channels, Height, Width);

    internal float[] X => SeededWeights.Uniform(Seed, Name + ".x", Shape.ElementCount).Select(v => v * 2 + Offset).ToArray();

    internal float[] Gamma => SeededWeights.Uniform(Seed, Name + ".gamma", Channels).Select(v => 1 + v / 4).ToArray();
}

/// <summary>
/// The channel RMS norm of every backend against the double reference, at sizes the oracle fixtures do not reach:
/// pixel runs past the CPU kernel's 2048-pixel item (and one past it by one), one channel, a huge offset; and in
/// 16-bit storage (bf16, fp16) on the CPU and ILGPU backends, against the reference of the stored input.
/// </summary>
public sealed class RmsNormKernelTests
{
    private const double AbsTolerance = 1e-5;
    private const double RelTolerance = 1e-5;

    /// <summary>One rounding of the 16-bit output (bf16: 8 bits of mantissa) on values of about 1-3.</summary>
    private const double Bf16Tolerance = 3.0 / 128, F16Tolerance = 3.0 / 1024;

    private static readonly RmsNormCase[] Shapes =
    [
        new("1x1 image, C=1", 1, 1, 1, 1, false),
        new("47x53, C=3, silu (2491 pixels: two items)", 1, 3, 47, 53, true),
        new("batch 2, 2049x1, C=7 (an item of one pixel)", 2, 7, 2049, 1, false),
        new("5x3, C=384, silu", 1, 384, 5, 3, true),
        new("4x4, C=16, mean 1000", 1, 16, 4, 4, false, 1000f),
    ];

    private static IEnumerable<TestCaseData> OnEveryBackend() => KernelBackends.Cases(KernelBackends.EveryBackend, Shapes);

    [TestCaseSource(nameof(OnEveryBackend))]
    public void MatchesReference(string backendName, RmsNormCase c)
    {
        var backend = KernelBackends.Get(backendName);
        float[] x = c.X, gamma = c.Gamma;
        var expected = Reference.RmsNorm(x, c.Batch, c.Channels, c.Height * c.Width, gamma, c.Silu);
        using var tx = backend.Upload(x, c.Shape);
        using var tg = backend.Upload(gamma, new TensorShape(c.Channels));
        using var y = backend.RmsNorm(tx, tg, c.Silu);
        var actual = new float[c.Shape.ElementCount];
        backend.Download(y, actual);
        NumericAssert.Close(actual, expected, c.Shape, AbsTolerance, RelTolerance, $"rms_norm {backendName} {c.Name}");
    }

    [TestCase("cpu", DType.BF16)]
    [TestCase("cpu", DType.F16)]
    [TestCase("ilgpu-cpu", DType.BF16)]
    [TestCase("ilgpu-cpu", DType.F16)]
    public void SixteenBitStorageMatchesTheReferenceOfTheStoredInput(string device, DType dtype)
    {
        using var cpu = device == "cpu" ? new CpuBackend(storage: dtype) : null;
        IBackend backend = cpu is not null ? cpu : TestBackends.Ilgpu(DevicePreference.IlgpuCpu, dtype);
        var c = new RmsNormCase("2x21 5x7 silu", 2, 21, 5, 7, true);
        float[] x = c.X, gamma = c.Gamma;
        using var tx = backend.Upload(x, c.Shape, dtype);
        using var tg = backend.Upload(gamma, new TensorShape(c.Channels));
        var stored = new float[x.Length];
        backend.Download(tx, stored);
        var expected = Reference.RmsNorm(stored, c.Batch, c.Channels, c.Height * c.Width, gamma, c.Silu);
        using var y = backend.RmsNorm(tx, tg, c.Silu);
        Assert.That(y.DType, Is.EqualTo(dtype), "a 16-bit feature map stays 16-bit");
        var actual = new float[x.Length];
        backend.Download(y, actual);
        NumericAssert.Close(actual, expected, c.Shape, dtype == DType.BF16 ? Bf16Tolerance : F16Tolerance, 0, $"rms_norm {device} {dtype}");
    }
}
