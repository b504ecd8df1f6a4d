using ILGPU;
using ILGPU.Runtime;
using NativeVae.Kernels.Gpu;
using NativeVae.Tests.Support;

namespace NativeVae.Tests.Kernels;

/// <summary>
/// mma.sync m16n8k16 against an fp64 product of the logical matrices: its C# fallback on ILGPU's CPU accelerator
/// (warps of 32) and, where there is a GPU, the instruction itself. The test loads each lane's fragments by the PTX
/// ISA's layouts, so a fallback or a kernel that disagrees with them fails here.
/// </summary>
public sealed class WarpMmaTests
{
    private const int M = 16;
    private const int N = 8;
    private const int K = 16;
    private const int WordsPerRow = K / 2;
    private const int Lanes = 32;

    /// <summary>One warp: A row-major [16][16] and B column-major [8][16] as packed pairs, C row-major [16][8], D = A * B + C.</summary>
    public static void Tile(ArrayView<uint> a, ArrayView<uint> b, ArrayView<float> c, int bf16)
    {
        int lane = Group.IdxX;
        int g = lane / 4;
        int t = lane % 4;
        var fa = new MmaFragmentA
        {
            A0 = a[g * WordsPerRow + t],
            A1 = a[(g + 8) * WordsPerRow + t],
            A2 = a[g * WordsPerRow + 4 + t],
            A3 = a[(g + 8) * WordsPerRow + 4 + t],
        };
        var fb = new MmaFragmentB { B0 = b[g * WordsPerRow + t], B1 = b[g * WordsPerRow + 4 + t] };
        var acc = new MmaAccumulator
        {
            C0 = c[g * N + 2 * t],
            C1 = c[g * N + 2 * t + 1],
            C2 = c[(g + 8) * N + 2 * t],
            C3 = c[(g + 8) * N + 2 * t + 1],
        };
        if (bf16 != 0) WarpMma.Bf16(ref acc, fa, fb);
        else WarpMma.F16(ref acc, fa, fb);
        Warp.Barrier();
        c[g * N + 2 * t] = acc.C0;
        c[g * N + 2 * t + 1] = acc.C1;
        c[(g + 8) * N + 2 * t] = acc.C2;
        c[(g + 8) * N + 2 * t + 1] = acc.C3;
    }

    private static IEnumerable<TestCaseData> Cases() =>
        from accelerator in TensorCoreAccelerators.Names
        from bf16 in new[] { true, false }
        select new TestCaseData(accelerator, bf16).SetArgDisplayNames(accelerator, bf16 ? "bf16" : "fp16");

    [TestCaseSource(nameof(Cases))]
    public void MatchesTheInstructionsLayouts(string acceleratorName, bool bf16)
    {
        var random = new Random(bf16 ? 16 : 61);
        // Values exact in both formats (multiples of 1/64 below 4), so every product is exact in fp32 too.
        float Draw() => random.Next(-256, 256) / 64f;
        var a = new float[M * K];
        var bColumns = new float[N * K];
        var c = new float[M * N];
        for (int i = 0; i < a.Length; i++) a[i] = Draw();
        for (int i = 0; i < bColumns.Length; i++) bColumns[i] = Draw();
        for (int i = 0; i < c.Length; i++) c[i] = Draw();

        var expected = new double[M * N];
        for (int row = 0; row < M; row++)
        for (int col = 0; col < N; col++)
        {
            double sum = c[row * N + col];
            for (int k = 0; k < K; k++) sum += (double)a[row * K + k] * bColumns[col * K + k];
            expected[row * N + col] = sum;
        }

        var accelerator = TensorCoreAccelerators.Get(acceleratorName);
        using var aBuffer = accelerator.Allocate1D(Pack(a, bf16));
        using var bBuffer = accelerator.Allocate1D(Pack(bColumns, bf16));
        using var cBuffer = accelerator.Allocate1D(c);
        var kernel = accelerator.LoadStreamKernel<ArrayView<uint>, ArrayView<uint>, ArrayView<float>, int>(Tile);
        kernel(new KernelConfig(1, Lanes), aBuffer.View, bBuffer.View, cBuffer.View, bf16 ? 1 : 0);
        accelerator.Synchronize();
        var actual = cBuffer.GetAsArray1D();
        // Exact inputs: the only rounding is fp32 summation of 17 terms of magnitude <= 16.
        NumericAssert.Close(actual, expected, new TensorShape(M, N), abs: 1e-5, rel: 0, $"mma {(bf16 ? "bf16" : "fp16")}");
    }

    private static uint[] Pack(float[] values, bool bf16)
    {
        var words = new uint[values.Length / 2];
        for (int i = 0; i < words.Length; i++)
            words[i] = HalfWords.Pack(Narrow(values[2 * i], bf16), Narrow(values[2 * i + 1], bf16));
        return words;
    }

    private static uint Narrow(float value, bool bf16) =>
        bf16 ? default(Bf16Format).Narrow(value) : default(F16Format).Narrow(value);
}
