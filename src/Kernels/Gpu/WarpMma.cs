using ILGPU;
using ILGPU.Runtime.Cuda;

namespace NativeVae.Kernels.Gpu;

/// <summary>One lane's four fp32 accumulators of a warp's 16 x 8 output tile (rows g and g + 8, columns 2t and 2t + 1).</summary>
internal struct MmaAccumulator
{
    public float C0;
    public float C1;
    public float C2;
    public float C3;
}

/// <summary>
/// One lane's share of a 16 x 16 A tile (row-major): four words of two 16-bit elements, the lower column in the low
/// half. With g = lane / 4 and t = lane % 4: A0 = row g, columns 2t and 2t + 1; A1 = row g + 8, same columns;
/// A2 = row g, columns 2t + 8 and 2t + 9; A3 = row g + 8, columns 2t + 8 and 2t + 9.
/// </summary>
internal struct MmaFragmentA
{
    public uint A0;
    public uint A1;
    public uint A2;
    public uint A3;
}

/// <summary>
/// One lane's share of a 16 x 8 B tile (column-major, k along the column): B0 = column g, rows 2t and 2t + 1;
/// B1 = column g, rows 2t + 8 and 2t + 9; the lower row in the low half.
/// </summary>
internal struct MmaFragmentB
{
    public uint B0;
    public uint B1;
}

/// <summary>
/// Where <see cref="WarpMma.Emulate"/> reads any lane's fragments: through shuffles of the lanes' registers, or,
/// where they were loaded from shared memory, from the same addresses that lane's load used (no barrier at all, which
/// makes a tensor-core kernel ~30x faster on ILGPU's CPU accelerator).
/// </summary>
internal interface IMmaFragments
{
    MmaFragmentA A(int lane);

    MmaFragmentB B(int lane);
}

/// <summary>
/// The warp-wide tensor-core product D = A * B + C of PTX's <c>mma.sync.aligned.m16n8k16.row.col.f32</c>, in bf16 or
/// fp16, with the fragment layouts above. On CUDA it is one instruction (HMMA in SASS). Elsewhere (ILGPU's CPU
/// accelerator) it is computed from the same fragments with warp shuffles, lane by lane as the instruction defines
/// it, so a kernel's fragment logic is tested without a GPU. All 32 lanes of the warp must call it together.
/// </summary>
internal static class WarpMma
{
    private const int LanesPerGroup = 4;

    // Bf16 and F16 differ only in the instruction's types, but each spells its PTX out: ILGPU reads the inline
    // assembly from a string literal at the call, so the text cannot be a parameter of a shared helper.
    public static void Bf16(ref MmaAccumulator c, in MmaFragmentA a, in MmaFragmentB b)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> d0 = c.C0, d1 = c.C1, d2 = c.C2, d3 = c.C3;
            Input<uint> a0 = a.A0, a1 = a.A1, a2 = a.A2, a3 = a.A3, b0 = b.B0, b1 = b.B1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            c.C0 = d0.Value;
            c.C1 = d1.Value;
            c.C2 = d2.Value;
            c.C3 = d3.Value;
        }
        else
        {
            Emulate(ref c, a, b, default(Bf16Format));
        }
    }

    public static void F16(ref MmaAccumulator c, in MmaFragmentA a, in MmaFragmentB b)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> d0 = c.C0, d1 = c.C1, d2 = c.C2, d3 = c.C3;
            Input<uint> a0 = a.A0, a1 = a.A1, a2 = a.A2, a3 = a.A3, b0 = b.B0, b1 = b.B1;
            CudaAsm.EmitRef(
                "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
                ref d0, ref d1, ref d2, ref d3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
            c.C0 = d0.Value;
            c.C1 = d1.Value;
            c.C2 = d2.Value;
            c.C3 = d3.Value;
        }
        else
        {
            Emulate(ref c, a, b, default(F16Format));
        }
    }

    /// <summary>
    /// The instruction's per-lane result from the documented layouts, with the other lanes' fragments from
    /// <paramref name="fragments"/>: lane (g, t) needs rows g and g + 8 of A, held by lanes 4g .. 4g + 3, and columns
    /// 2t and 2t + 1 of B, held by lanes 8t .. 8t + 3 and 8t + 4 .. 8t + 7. Source lane s of each group of four holds
    /// depth 2s, 2s + 1, 2s + 8 and 2s + 9. All lanes ask for fragments in the same order (a shuffle needs that).
    /// </summary>
    public static void Emulate<TFragments, TFormat>(ref MmaAccumulator c, TFragments fragments, TFormat format)
        where TFragments : struct, IMmaFragments
        where TFormat : struct, IHalfFormat
    {
        int lane = Warp.LaneIdx;
        int g = lane / LanesPerGroup;
        int t = lane % LanesPerGroup;
        float c0 = c.C0, c1 = c.C1, c2 = c.C2, c3 = c.C3;
        for (int s = 0; s < LanesPerGroup; s++)
        {
            var rows = fragments.A(g * LanesPerGroup + s);
            int evenColumnLane = 2 * t * LanesPerGroup + s;
            var even = fragments.B(evenColumnLane);
            var odd = fragments.B(evenColumnLane + LanesPerGroup);
            c0 += Dot(rows.A0, even.B0, format) + Dot(rows.A2, even.B1, format);
            c1 += Dot(rows.A0, odd.B0, format) + Dot(rows.A2, odd.B1, format);
            c2 += Dot(rows.A1, even.B0, format) + Dot(rows.A3, even.B1, format);
            c3 += Dot(rows.A1, odd.B0, format) + Dot(rows.A3, odd.B1, format);
        }
        c.C0 = c0;
        c.C1 = c1;
        c.C2 = c2;
        c.C3 = c3;
    }

    private static void Emulate<TFormat>(ref MmaAccumulator c, in MmaFragmentA a, in MmaFragmentB b, TFormat format)
        where TFormat : struct, IHalfFormat =>
        Emulate(ref c, new ShuffledFragments(new Fragments { A = a, B = b }), format);

    /// <summary>
    /// Other lanes' fragments by warp shuffles of whole fragments (12 per product, not 32: each shuffle costs the CPU
    /// accelerator a warp barrier).
    /// </summary>
    private readonly struct ShuffledFragments(Fragments mine) : IMmaFragments
    {
        public MmaFragmentA A(int lane) => Warp.Shuffle(mine, lane).A;

        public MmaFragmentB B(int lane) => Warp.Shuffle(mine, lane).B;
    }

    /// <summary>A lane's operands, shuffled as one value.</summary>
    private struct Fragments
    {
        public MmaFragmentA A;
        public MmaFragmentB B;
    }

    /// <summary>The two-element dot product of two packed pairs, in fp32.</summary>
    private static float Dot<TFormat>(uint x, uint y, TFormat format) where TFormat : struct, IHalfFormat =>
        format.Widen(HalfWords.Low(x)) * format.Widen(HalfWords.Low(y)) + format.Widen(HalfWords.High(x)) * format.Widen(HalfWords.High(y));

}
