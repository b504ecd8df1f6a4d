using NativeVae.Backends.Cpu;
using NativeVae.Core;
using NativeVae.Tests.Support;
using NativeVae.Weights;

namespace NativeVae.Tests.Kernels;

/// <summary>One pixel shuffle case: an input [N, C, H, W], the spec, and (depth to space) the frame, or (space to depth) whether an earlier frame is given.</summary>
public sealed record PixelShuffleCase(string Name, bool ToDepth, int Batch, int Channels, int Height, int Width, int Factor,
    int Frames = 1, int Group = 1, bool WidthFirst = false, int Frame = 0, bool Previous = false)
{
    private const ulong Seed = 29;

    public override string ToString() => Name;

    internal TensorShape Shape => TensorShape.Nchw(Batch, Channels, Height, Width);

    internal PixelShuffleSpec Spec => new(Factor, Frames, Group, WidthFirst);

    internal float[] Input(string which) => SeededWeights.Uniform(Seed, Name + "." + which, Shape.ElementCount);
}

/// <summary>
/// The pixel shuffles (Wan 2.2's patchify, unpatchify, AvgDown3D and DupUp3D) of every backend against the double
/// reference, which scatters as diffusers' view/permute does where the kernels gather: odd sizes and channel counts,
/// batches, both sub-position orders, two frames with and without the earlier one, every group and repeat count the
/// published config uses and some it does not; 16-bit storage; the inverse pair; and the refusals.
/// </summary>
public sealed class PixelShuffleKernelTests
{
    private const double Tolerance = 1e-6;

    /// <summary>One bf16 / fp16 rounding of values in [-1, 1], plus the mean's.</summary>
    private const double Bf16Tolerance = 1.0 / 128, F16Tolerance = 1.0 / 1024;

    private static readonly PixelShuffleCase[] Shapes =
    [
        new("patchify 3x6x10 batch 2", true, 2, 3, 6, 10, 2, WidthFirst: true),
        new("avgdown 2x2 frames 2 group 4, earlier frame", true, 1, 5, 6, 4, 2, Frames: 2, Group: 4, Previous: true),
        new("avgdown 2x2 frames 2 group 4, zero frame", true, 1, 5, 6, 4, 2, Frames: 2, Group: 4),
        new("avgdown 2x2 group 4 (160 to 160 in small: 7 to 7)", true, 1, 7, 10, 14, 2, Group: 4),
        new("avgdown 2x2 group 2, odd 9x3 out", true, 1, 6, 18, 6, 2, Group: 2),
        new("avgdown identity (the last level)", true, 1, 4, 3, 5, 1),
        new("avgdown 3x3 group 3", true, 1, 2, 9, 6, 3, Group: 3),
        new("unpatchify 12x3x5 batch 2", false, 2, 12, 3, 5, 2, WidthFirst: true),
        new("dupup frames 2 repeats 8, frame 0", false, 1, 6, 3, 4, 2, Frames: 2, Group: 8, Frame: 0),
        new("dupup frames 2 repeats 8, frame 1", false, 1, 6, 3, 4, 2, Frames: 2, Group: 8, Frame: 1),
        new("dupup repeats 2 (1024 to 512 in small: 8 to 4)", false, 1, 8, 5, 3, 2, Group: 2),
        new("dupup frames 2 repeats 4, frame 1", false, 2, 4, 2, 7, 2, Frames: 2, Group: 4, Frame: 1),
    ];

    private static IEnumerable<TestCaseData> OnEveryBackend() => KernelBackends.Cases(KernelBackends.EveryBackend, Shapes);

    [TestCaseSource(nameof(OnEveryBackend))]
    public void MatchesReference(string backendName, PixelShuffleCase c)
    {
        var backend = KernelBackends.Get(backendName);
        var (actual, shape) = Run(backend, c, DType.F32, out var expected);
        NumericAssert.Close(actual, expected, shape, Tolerance, 0, $"{backendName} {c.Name}");
    }

    [TestCase("cpu", DType.BF16)]
    [TestCase("cpu", DType.F16)]
    [TestCase("ilgpu-cpu", DType.BF16)]
    [TestCase("ilgpu-cpu", DType.F16)]
    public void SixteenBitStorageMatchesTheReferenceOfTheStoredInput(string device, DType dtype)
    {
        using var cpu = device == "cpu" ? new CpuBackend(storage: dtype) : null;
        IBackend backend = cpu is not null ? cpu : TestBackends.Ilgpu(DevicePreference.IlgpuCpu, dtype);
        foreach (var c in new[] { Shapes[1], Shapes[9] })
        {
            var (actual, shape) = Run(backend, c, dtype, out var expected);
            NumericAssert.Close(actual, expected, shape, dtype == DType.BF16 ? Bf16Tolerance : F16Tolerance, 0, $"{device} {dtype} {c.Name}");
        }
    }

    [TestCase("cpu-Scalar")]
    [TestCase(KernelBackends.IlgpuPlain)]
    public void UnpatchifyInvertsPatchify(string backendName)
    {
        var backend = KernelBackends.Get(backendName);
        var shape = TensorShape.Nchw(2, 3, 10, 6);
        var x = SeededWeights.Uniform(31, "roundtrip", shape.ElementCount);
        var spec = PixelShuffleSpec.WanPatch(2);
        using var tx = backend.Upload(x, shape);
        using var patches = backend.SpaceToDepth(tx, null, spec);
        Assert.That(patches.Shape, Is.EqualTo(TensorShape.Nchw(2, 12, 5, 3)));
        using var back = backend.DepthToSpace(patches, spec, 0);
        var actual = new float[x.Length];
        backend.Download(back, actual);
        Assert.That(actual, Is.EqualTo(x), "unpatchify(patchify(x)) is x, bit for bit");
    }

    [Test]
    public void RefusesWhatItCannotShuffleNamingIt()
    {
        var backend = KernelBackends.Get(KernelBackends.IlgpuPlain);
        using var odd = backend.Upload(new float[3 * 5 * 4], TensorShape.Nchw(1, 3, 5, 4));
        Assert.That(() => backend.SpaceToDepth(odd, null, new PixelShuffleSpec(2)),
            Throws.ArgumentException.With.Message.Contains("5x4").And.Message.Contains("factor 2"));
        using var even = backend.Upload(new float[3 * 4 * 4], TensorShape.Nchw(1, 3, 4, 4));
        Assert.That(() => backend.SpaceToDepth(even, null, new PixelShuffleSpec(2, Group: 5)),
            Throws.ArgumentException.With.Message.Contains("groups of 5"));
        Assert.That(() => backend.SpaceToDepth(even, even, new PixelShuffleSpec(2)),
            Throws.ArgumentException.With.Message.Contains("earlier frame"));
        Assert.That(() => backend.DepthToSpace(even, new PixelShuffleSpec(2, Frames: 2, Group: 1), 0),
            Throws.ArgumentException.With.Message.Contains("not whole blocks of 8"));
        Assert.That(() => backend.DepthToSpace(even, new PixelShuffleSpec(2, Frames: 2, Group: 8), 2),
            Throws.ArgumentException.With.Message.Contains("frame 2"));
    }

    private static (float[] Actual, TensorShape Shape) Run(IBackend backend, PixelShuffleCase c, DType dtype, out double[] expected)
    {
        float[] current = c.Input("x"), previous = c.Input("previous");
        using var tx = backend.Upload(current, c.Shape, dtype);
        using var tp = c.Previous ? backend.Upload(previous, c.Shape, dtype) : null;
        // The reference of what was stored: 16-bit storage rounds the inputs first.
        var stored = new float[current.Length];
        backend.Download(tx, stored);
        float[]? storedPrevious = null;
        if (tp is not null)
        {
            storedPrevious = new float[previous.Length];
            backend.Download(tp, storedPrevious);
        }
        using var y = c.ToDepth ? backend.SpaceToDepth(tx, tp, c.Spec) : backend.DepthToSpace(tx, c.Spec, c.Frame);
        expected = c.ToDepth
            ? Reference.SpaceToDepth(stored, storedPrevious, c.Shape, c.Spec)
            : Reference.DepthToSpace(stored, c.Shape, c.Spec, c.Frame);
        var actual = new float[y.ElementCount];
        Assert.That(actual, Has.Length.EqualTo(expected.Length), $"{c.Name}: output {y.Shape}");
        backend.Download(y, actual);
        return (actual, y.Shape);
    }
}
