using ILGPU;
using ILGPU.Runtime;
using NativeVae.Backends.Ilgpu;
using NativeVae.Kernels.Gpu;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// The 16-bit NHWC elementwise kernels and layout conversions against fp64 references of the same 16-bit values, in
/// bf16 and fp16, on a tensor whose 21 channels pad to 32 (padding must stay exactly zero); on ILGPU's CPU
/// accelerator, and on CUDA where there is a GPU.
/// </summary>
public sealed class ElementwiseHalfTests
{
    private const int Batch = 2;
    private const int Channels = 21;
    private const int Stride = 32;
    private const int Pixels = 15;
    private const double Bf16Ulp = 1.0 / 128;
    private const double F16Ulp = 1.0 / 1024;
    private const double AbsoluteTolerance = 1e-6;

    private static IEnumerable<TestCaseData> AcceleratorsAndFormats() =>
        from accelerator in TensorCoreAccelerators.Names
        from bf16 in new[] { true, false }
        select new TestCaseData(accelerator, bf16).SetArgDisplayNames(accelerator, bf16 ? "bf16" : "fp16");

    private static readonly HalfLayout Layout = new() { Batch = Batch, Pixels = Pixels, Channels = Channels, ChannelStride = Stride };
    private static readonly TensorShape Shape = new(Batch, Channels, Pixels);

    [TestCaseSource(nameof(AcceleratorsAndFormats))]
    public void EveryOpMatchesTheReference(string acceleratorName, bool bf16)
    {
        if (bf16) Run<Bf16Format>(TensorCoreAccelerators.Get(acceleratorName), bf16, Bf16Ulp);
        else Run<F16Format>(TensorCoreAccelerators.Get(acceleratorName), bf16, F16Ulp);
    }

    private static void Run<TFormat>(Accelerator accelerator, bool bf16, double ulp) where TFormat : struct, IHalfFormat
    {
        var format = default(TFormat);
        var random = new Random(bf16 ? 7 : 8);
        float[] Draw() => Enumerable.Range(0, Batch * Channels * Pixels).Select(_ => (float)(random.NextDouble() * 8 - 4)).ToArray();
        float[] Rounded(float[] v) => v.Select(x => format.Widen(format.Narrow(x))).ToArray();
        var a = Draw();
        var b = Draw();
        var launcher = new ElementwiseHalfLauncher(accelerator, accelerator.DefaultStream);
        using var aNchw = accelerator.Allocate1D(a);
        using var bNchw = accelerator.Allocate1D(b);
        using var aHalf = accelerator.Allocate1D<uint>(Layout.Words);
        using var bHalf = accelerator.Allocate1D<uint>(Layout.Words);
        using var result = accelerator.Allocate1D<uint>(Layout.Words);
        using var back = accelerator.Allocate1D<float>(a.Length);
        launcher.FromNchw(bf16, Layout, aNchw.View, aHalf.View);
        launcher.FromNchw(bf16, Layout, bNchw.View, bHalf.View);

        float[] ReadBack(ArrayView<uint> half, string what)
        {
            launcher.ToNchw(bf16, Layout, half.Cast<ushort>(), back.View);
            accelerator.Synchronize();
            var words = new uint[Layout.Words];
            half.SubView(0, Layout.Words).CopyToCPU(words);
            var halves = NhwcPacking.FromWords(words);
            for (int i = 0; i < halves.Length; i++)
                if (i % Stride >= Channels) Assert.That(halves[i], Is.Zero, $"{what}: padding element {i} is not zero");
            return back.GetAsArray1D();
        }

        var ra = Rounded(a);
        var rb = Rounded(b);
        NumericAssert.Close(ReadBack(aHalf.View, "round trip"), ra.Select(x => (double)x).ToArray(), Shape, 0, 0, "NCHW -> NHWC -> NCHW");

        launcher.Add(bf16, Layout, aHalf.View, bHalf.View, result.View);
        NumericAssert.Close(ReadBack(result.View, "add"), ra.Zip(rb, (x, y) => (double)x + y).ToArray(), Shape, AbsoluteTolerance, ulp, "add");

        launcher.ScaleShift(bf16, Layout, aHalf.View, result.View, 0.5f, 1.25f);
        NumericAssert.Close(ReadBack(result.View, "scale_shift"), ra.Select(x => x * 0.5 + 1.25).ToArray(), Shape, AbsoluteTolerance, ulp, "scale_shift");

        foreach (var (op, reference) in new (UnaryKind, Func<double, double>)[]
                 { (UnaryKind.Silu, Reference.Silu), (UnaryKind.Relu, Reference.Relu), (UnaryKind.TanhClamp3, Reference.TanhClamp3) })
        {
            launcher.Unary(bf16, Layout, op, aHalf.View, result.View);
            NumericAssert.Close(ReadBack(result.View, op.ToString()), ra.Select(x => reference(x)).ToArray(), Shape, AbsoluteTolerance, ulp, op.ToString());
        }
    }
}
