using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace NativeVae.Kernels.Gpu;

// Single-head attention over 16-bit NHWC storage on tensor cores, in the FlashAttention-2 style. Q, K, V and the
// output are [Batch, Tokens, ChannelStride] (a feature map's pixels are its tokens), the padding channels zero:
// output[b, i, c] = sum_j softmax_j(scale * q[b, i, :] . k[b, j, :]) v[b, j, c].
// A group of 8 warps owns 32 queries as 2 strips of 16 rows. The 4 warps of a strip split both halves of the work:
// for each tile of 64 keys, warp s scores the strip against keys 16s .. 16s + 15 over all channels (Q and K
// fragments straight from global memory, where L1 shares them between the warps), and accumulates output columns
// 128s .. 128s + 127 over all 64 keys. So the scores are computed once, the output stays in registers (64 fp32 per
// lane) for channel counts up to 512, and only the 16-bit weights P of the tile and a transposed V chunk pass
// through shared memory. The softmax is online, in fp32 and base 2: the tile's row max is merged over the strip's
// warps in shared memory, every warp then holds the same running max, and each keeps its own share of the row sums,
// added up once at the end. Nothing N x N, and nothing per key tile, goes to global memory.

internal static class AttentionTensorCoreGpu
{
    public const int QueryTile = 32;
    public const int KeyTile = 64;
    public const int GroupSize = 256;

    /// <summary>The widest stored channel count: 4 warps x 128 output columns.</summary>
    public const int MaxChannels = Slices * SliceColumns;

    private const int WarpSize = 32;
    /// <summary>Warps per strip of queries; each scores a quarter of the key tile and owns a quarter of the columns.</summary>
    private const int Slices = 4;
    private const int StripRows = 16;
    private const int SliceColumns = 128;
    private const int KeysPerWarp = KeyTile / Slices;
    private const int MmaColumns = 8;
    private const int MmaDepth = 16;
    private const int LanesPerGroup = 4;
    /// <summary>A fragment's second row is 8 rows below its first (g and g + 8).</summary>
    private const int LowerRows = 8;
    private const int ElementsPerWord = 2;
    /// <summary>Word offset of the second half of a fragment's depth (elements 2t + 8, 2t + 9).</summary>
    private const int HighHalfWords = 4;
    private const int WordsPerMmaDepth = MmaDepth / ElementsPerWord;

    /// <summary>Keys of V staged (transposed) at a time: 32 keys x 512 columns fit beside P in 48 KB of shared memory.</summary>
    private const int ValueChunk = 32;
    private const int ChunkWords = ValueChunk / ElementsPerWord;
    /// <summary>Words per staged V column: 4 of padding put the 8 columns one fragment load touches on distinct banks.</summary>
    private const int ValuePitch = ChunkWords + 4;
    /// <summary>Words per row of P: the tile's 64 keys, plus 4 of padding for the same reason.</summary>
    private const int WeightPitch = KeyTile / ElementsPerWord + 4;

    private const float Log2E = 1.44269504089f;

    /// <summary>bf16 storage. Launch: grid (ceil(Tokens / 32), Batch), group 256; ChannelStride at most 512.</summary>
    [GpuKernel(ExplicitlyGrouped = true, TensorCores = true)]
    internal static void Bf16(HalfLayout layout, float scale, ArrayView<uint> q, ArrayView<uint> k, ArrayView<uint> v,
        ArrayView<uint> output) =>
        Run(default(Bf16Format), layout, scale, q, k, v, output);

    /// <summary>fp16 storage. Launch as <see cref="Bf16"/>.</summary>
    [GpuKernel(ExplicitlyGrouped = true, TensorCores = true)]
    internal static void F16(HalfLayout layout, float scale, ArrayView<uint> q, ArrayView<uint> k, ArrayView<uint> v,
        ArrayView<uint> output) =>
        Run(default(F16Format), layout, scale, q, k, v, output);

    private static void Run<TFormat>(TFormat format, HalfLayout layout, float scale, ArrayView<uint> q,
        ArrayView<uint> k, ArrayView<uint> v, ArrayView<uint> output)
        where TFormat : struct, IHalfFormat
    {
        var values = SharedMemory.Allocate<uint>(MaxChannels * ValuePitch);
        var weights = SharedMemory.Allocate<uint>(QueryTile * WeightPitch);
        var exchange = SharedMemory.Allocate<float>(Slices * QueryTile);

        int thread = Group.IdxX;
        int warp = thread / WarpSize;
        int lane = thread % WarpSize;
        int slice = warp % Slices;
        int g = lane / LanesPerGroup;
        int t = lane % LanesPerGroup;
        int n = layout.Pixels;
        int words = layout.ChannelStride / ElementsPerWord;
        int batchBase = Grid.IdxY * n * words;
        // This lane's fragment rows are the tile's rows `row` and `row + 8`.
        int row = warp / Slices * StripRows + g;
        int tileRow = Grid.IdxX * QueryTile + warp / Slices * StripRows;
        var rows = new RowPair(batchBase, tileRow + g, n, words);
        int depthSteps = layout.ChannelStride / MmaDepth;
        int columnStart = slice * SliceColumns;
        int columnTiles = XMath.Clamp((layout.ChannelStride - columnStart) / MmaColumns, 0, OutputTile.Tiles);
        float scale2 = scale * Log2E;

        var state = new SoftmaxState { MaxA = float.NegativeInfinity, MaxB = float.NegativeInfinity };
        var o = default(OutputTile);
        for (int j0 = 0; j0 < n; j0 += KeyTile)
        {
            // Scores of the strip against this warp's 16 keys: n-tile 0 is keys +0..7, n-tile 1 keys +8..15.
            int warpKey = j0 + slice * KeysPerWarp;
            var s0 = default(MmaAccumulator);
            var s1 = default(MmaAccumulator);
            for (int step = 0; step < depthSteps; step++)
            {
                var scores = new ScoreFragments(q, k, batchBase, n, words, tileRow, warpKey, step * WordsPerMmaDepth);
                if (!CudaAsm.IsSupported)
                {
                    WarpMma.Emulate(ref s0, scores, format);
                    WarpMma.Emulate(ref s1, scores.NextKeys(), format);
                    continue;
                }
                var a = scores.A(lane);
                format.Mma(ref s0, a, scores.B(lane));
                format.Mma(ref s1, a, scores.NextKeys().B(lane));
            }

            // Lane (g, t) holds keys 2t and 2t + 1 of each n-tile; keys past N score -inf and weigh exp2(-inf) = 0.
            int laneKey = warpKey + 2 * t;
            s0 = Scaled(s0, scale2, laneKey, n);
            s1 = Scaled(s1, scale2, laneKey + MmaColumns, n);
            float tileMaxA = QuadMax(XMath.Max(XMath.Max(s0.C0, s0.C1), XMath.Max(s1.C0, s1.C1)));
            float tileMaxB = QuadMax(XMath.Max(XMath.Max(s0.C2, s0.C3), XMath.Max(s1.C2, s1.C3)));
            if (t == 0)
            {
                exchange[slice * QueryTile + row] = tileMaxA;
                exchange[slice * QueryTile + row + LowerRows] = tileMaxB;
            }
            Group.Barrier();

            // Every warp of the strip merges the same four maxima, so all hold the same running max. The tile's
            // first key is real, so a tile max is finite; on the first tile keep = exp2(-inf) = 0.
            float keepA = Raise(ref state.MaxA, SliceMax(exchange, row));
            float keepB = Raise(ref state.MaxB, SliceMax(exchange, row + LowerRows));
            s0 = Weights(s0, state.MaxA, state.MaxB);
            s1 = Weights(s1, state.MaxA, state.MaxB);
            state.SumA = state.SumA * keepA + s0.C0 + s0.C1 + s1.C0 + s1.C1;
            state.SumB = state.SumB * keepB + s0.C2 + s0.C3 + s1.C2 + s1.C3;
            int weightAt = row * WeightPitch + slice * (KeysPerWarp / ElementsPerWord) + t;
            weights[weightAt] = Pack(format, s0.C0, s0.C1);
            weights[weightAt + HighHalfWords] = Pack(format, s1.C0, s1.C1);
            weights[weightAt + LowerRows * WeightPitch] = Pack(format, s0.C2, s0.C3);
            weights[weightAt + LowerRows * WeightPitch + HighHalfWords] = Pack(format, s1.C2, s1.C3);
            var rescale = new Rescale(keepA, keepB);
            o.ForEach(ref rescale);

            // output[:, columns] += P V, V staged transposed 32 keys at a time.
            for (int chunk = 0; chunk < KeyTile / ValueChunk; chunk++)
            {
                if (chunk > 0) Group.Barrier();
                StageValues(v, values, batchBase, j0 + chunk * ValueChunk, n, words, thread);
                Group.Barrier();
                if (columnTiles == 0) continue;
                for (int step = 0; step < ValueChunk / MmaDepth; step++)
                {
                    int weightWord = chunk * ChunkWords + step * WordsPerMmaDepth;
                    var product = new ValueProduct<TFormat>(format, weights, values, row - g, weightWord,
                        columnStart * ValuePitch + step * WordsPerMmaDepth, columnTiles);
                    o.ForEach(ref product);
                }
            }
        }

        // Each lane summed its own keys: add up the quad, then the strip's four warps.
        float sumA = QuadSum(state.SumA), sumB = QuadSum(state.SumB);
        Group.Barrier();
        if (t == 0)
        {
            exchange[slice * QueryTile + row] = sumA;
            exchange[slice * QueryTile + row + LowerRows] = sumB;
        }
        Group.Barrier();
        var store = new Store<TFormat>(format, output, rows, columnStart / ElementsPerWord + t, columnTiles,
            1f / SliceSum(exchange, row), 1f / SliceSum(exchange, row + LowerRows));
        o.ForEach(ref store);
    }

    /// <summary>
    /// Stages keys firstKey .. firstKey + 31 of V transposed: values[c * ValuePitch + p] holds keys 2p and 2p + 1 of
    /// channel c, as a B fragment reads them; keys past N are zeros (their weight is 0, and 0 * NaN would not be).
    /// Consecutive threads read consecutive words of a token (coalesced).
    /// </summary>
    private static void StageValues(ArrayView<uint> v, ArrayView<uint> values, int batchBase, int firstKey, int n,
        int words, int thread)
    {
        for (int e = thread; e < ChunkWords * words; e += GroupSize)
        {
            int keyPair = e / words;
            int columnPair = e - keyPair * words;
            int key = firstKey + ElementsPerWord * keyPair;
            uint even = key < n ? v[batchBase + key * words + columnPair] : 0u;
            uint odd = key + 1 < n ? v[batchBase + (key + 1) * words + columnPair] : 0u;
            int at = ElementsPerWord * columnPair * ValuePitch + keyPair;
            values[at] = HalfWords.Pack(HalfWords.Low(even), HalfWords.Low(odd));
            values[at + ValuePitch] = HalfWords.Pack(HalfWords.High(even), HalfWords.High(odd));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static MmaAccumulator Scaled(MmaAccumulator c, float scale2, int key, int n)
    {
        bool even = key < n, odd = key + 1 < n;
        return new MmaAccumulator
        {
            C0 = even ? c.C0 * scale2 : float.NegativeInfinity,
            C1 = odd ? c.C1 * scale2 : float.NegativeInfinity,
            C2 = even ? c.C2 * scale2 : float.NegativeInfinity,
            C3 = odd ? c.C3 * scale2 : float.NegativeInfinity,
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static MmaAccumulator Weights(MmaAccumulator s, float maxA, float maxB) => new()
    {
        C0 = XMath.Exp2(s.C0 - maxA),
        C1 = XMath.Exp2(s.C1 - maxA),
        C2 = XMath.Exp2(s.C2 - maxB),
        C3 = XMath.Exp2(s.C3 - maxB),
    };

    private static uint Pack<TFormat>(TFormat format, float low, float high) where TFormat : struct, IHalfFormat =>
        HalfWords.Pack(format.Narrow(low), format.Narrow(high));

    /// <summary>The max over the 4 lanes of a quad (one row's lanes t = 0..3).</summary>
    private static float QuadMax(float x)
    {
        x = XMath.Max(x, Warp.ShuffleXor(x, 1));
        return XMath.Max(x, Warp.ShuffleXor(x, 2));
    }

    private static float QuadSum(float x)
    {
        x += Warp.ShuffleXor(x, 1);
        return x + Warp.ShuffleXor(x, 2);
    }

    private static float SliceMax(ArrayView<float> exchange, int row) =>
        XMath.Max(XMath.Max(exchange[row], exchange[QueryTile + row]),
            XMath.Max(exchange[2 * QueryTile + row], exchange[3 * QueryTile + row]));

    private static float SliceSum(ArrayView<float> exchange, int row) =>
        exchange[row] + exchange[QueryTile + row] + exchange[2 * QueryTile + row] + exchange[3 * QueryTile + row];

    /// <summary>A lane's two rows (r and r + 8) of a [Batch, Tokens, words] tensor, reading zeros past N.</summary>
    private readonly struct RowPair(int batchBase, int first, int n, int words)
    {
        private readonly int _a = batchBase + first * words;
        private readonly int _b = batchBase + (first + LowerRows) * words;
        private readonly bool _validA = first < n;
        private readonly bool _validB = first + LowerRows < n;

        public uint LoadA(ArrayView<uint> x, int word) => _validA ? x[_a + word] : 0u;

        public uint LoadB(ArrayView<uint> x, int word) => _validB ? x[_b + word] : 0u;

        public void StoreA(ArrayView<uint> x, int word, uint value)
        {
            if (_validA) x[_a + word] = value;
        }

        public void StoreB(ArrayView<uint> x, int word, uint value)
        {
            if (_validB) x[_b + word] = value;
        }
    }

    /// <summary>The running max and this lane's share of the row sums, for rows r (A) and r + 8 (B).</summary>
    private struct SoftmaxState
    {
        public float MaxA;
        public float MaxB;
        public float SumA;
        public float SumB;
    }

    /// <summary>Raises a running max to cover a tile's and returns the factor earlier sums and outputs keep.</summary>
    private static float Raise(ref float max, float tileMax)
    {
        float newMax = XMath.Max(max, tileMax);
        float keep = XMath.Exp2(max - newMax);
        max = newMax;
        return keep;
    }

    /// <summary>One step applied to each of a lane's output tiles; <c>tile</c> is its index (columns 8 tile .. 8 tile + 7 of the slice).</summary>
    private interface ITileStep
    {
        void Apply(ref MmaAccumulator c, int tile);
    }

    /// <summary>
    /// A lane's share of its warp's 16 x 128 output: 16 MMA tiles, named rather than indexed so that they stay in
    /// registers; each step is applied to them in straight-line code.
    /// </summary>
    private struct OutputTile
    {
        public const int Tiles = SliceColumns / MmaColumns;

        public MmaAccumulator N0, N1, N2, N3, N4, N5, N6, N7, N8, N9, N10, N11, N12, N13, N14, N15;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void ForEach<TStep>(ref TStep step) where TStep : struct, ITileStep
        {
            step.Apply(ref N0, 0);
            step.Apply(ref N1, 1);
            step.Apply(ref N2, 2);
            step.Apply(ref N3, 3);
            step.Apply(ref N4, 4);
            step.Apply(ref N5, 5);
            step.Apply(ref N6, 6);
            step.Apply(ref N7, 7);
            step.Apply(ref N8, 8);
            step.Apply(ref N9, 9);
            step.Apply(ref N10, 10);
            step.Apply(ref N11, 11);
            step.Apply(ref N12, 12);
            step.Apply(ref N13, 13);
            step.Apply(ref N14, 14);
            step.Apply(ref N15, 15);
        }
    }

    /// <summary>Earlier outputs scaled by the factor their rows keep when the running max grows.</summary>
    private readonly struct Rescale(float keepA, float keepB) : ITileStep
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Apply(ref MmaAccumulator c, int tile)
        {
            c.C0 *= keepA;
            c.C1 *= keepA;
            c.C2 *= keepB;
            c.C3 *= keepB;
        }
    }

    /// <summary>
    /// One 16-key step of P V for the warp's strip (rows from <c>firstRow</c> of P, depth from <c>weightWord</c>) and
    /// each 8-column tile of its slice (staged V from word <c>firstValue</c>). Tiles past the stored channels are
    /// skipped (uniform over the warp).
    /// </summary>
    private readonly struct ValueProduct<TFormat>(TFormat format, ArrayView<uint> weights, ArrayView<uint> values,
        int firstRow, int weightWord, int firstValue, int tiles) : ITileStep where TFormat : struct, IHalfFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Apply(ref MmaAccumulator c, int tile)
        {
            if (tile >= tiles) return;
            var fragments = new ValueFragments(weights, values, firstRow * WeightPitch + weightWord,
                firstValue + tile * MmaColumns * ValuePitch);
            if (CudaAsm.IsSupported)
            {
                int lane = Warp.LaneIdx;
                format.Mma(ref c, fragments.A(lane), fragments.B(lane));
            }
            else
            {
                WarpMma.Emulate(ref c, fragments, format);
            }
        }
    }

    /// <summary>
    /// Any lane's fragments of a score product, loaded as that lane loads them: A is Q's rows firstRow + g and + 8,
    /// B is K's row firstKey + g, both at words word + t and + 4 of the token. The emulator reads them from memory
    /// rather than by shuffles.
    /// </summary>
    private readonly struct ScoreFragments(ArrayView<uint> q, ArrayView<uint> k, int batchBase, int n, int words,
        int firstRow, int firstKey, int word) : IMmaFragments
    {
        /// <summary>The same product against the next 8 keys.</summary>
        public ScoreFragments NextKeys() => new(q, k, batchBase, n, words, firstRow, firstKey + MmaColumns, word);

        public MmaFragmentA A(int lane)
        {
            var rows = new RowPair(batchBase, firstRow + lane / LanesPerGroup, n, words);
            int at = word + lane % LanesPerGroup;
            return new MmaFragmentA
            {
                A0 = rows.LoadA(q, at),
                A1 = rows.LoadB(q, at),
                A2 = rows.LoadA(q, at + HighHalfWords),
                A3 = rows.LoadB(q, at + HighHalfWords),
            };
        }

        public MmaFragmentB B(int lane)
        {
            var keys = new RowPair(batchBase, firstKey + lane / LanesPerGroup, n, words);
            int at = word + lane % LanesPerGroup;
            return new MmaFragmentB { B0 = keys.LoadA(k, at), B1 = keys.LoadA(k, at + HighHalfWords) };
        }
    }

    /// <summary>
    /// Any lane's fragments of a P V product from shared memory: A is P's rows g and g + 8 from word
    /// <c>weightAt</c>, B is the staged V's column g from word <c>valueAt</c>, each at word t and t + 4.
    /// </summary>
    private readonly struct ValueFragments(ArrayView<uint> weights, ArrayView<uint> values, int weightAt, int valueAt)
        : IMmaFragments
    {
        public MmaFragmentA A(int lane)
        {
            int at = weightAt + lane / LanesPerGroup * WeightPitch + lane % LanesPerGroup;
            return new MmaFragmentA
            {
                A0 = weights[at],
                A1 = weights[at + LowerRows * WeightPitch],
                A2 = weights[at + HighHalfWords],
                A3 = weights[at + LowerRows * WeightPitch + HighHalfWords],
            };
        }

        public MmaFragmentB B(int lane)
        {
            int at = valueAt + lane / LanesPerGroup * ValuePitch + lane % LanesPerGroup;
            return new MmaFragmentB { B0 = values[at], B1 = values[at + HighHalfWords] };
        }
    }

    /// <summary>The finished rows, divided by their sums and narrowed: lane (g, t) writes columns 2t, 2t + 1 of each tile.</summary>
    private readonly struct Store<TFormat>(TFormat format, ArrayView<uint> output, RowPair rows, int word, int tiles,
        float inverseA, float inverseB) : ITileStep where TFormat : struct, IHalfFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Apply(ref MmaAccumulator c, int tile)
        {
            if (tile >= tiles) return;
            int at = word + tile * (MmaColumns / ElementsPerWord);
            rows.StoreA(output, at, Pack(format, c.C0 * inverseA, c.C1 * inverseA));
            rows.StoreB(output, at, Pack(format, c.C2 * inverseB, c.C3 * inverseB));
        }
    }
}

/// <summary>Loads each tensor-core attention kernel once for one accelerator, on its first use, and launches it.</summary>
internal sealed class AttentionTensorCoreLauncher(Accelerator accelerator, AcceleratorStream stream)
{
    private readonly FormatKernels<Action<AcceleratorStream, KernelConfig, HalfLayout, float, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>>> _kernels = new(
        () => accelerator.LoadKernel<HalfLayout, float, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>>(AttentionTensorCoreGpu.Bf16),
        () => accelerator.LoadKernel<HalfLayout, float, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>>(AttentionTensorCoreGpu.F16));

    /// <summary>Whether the kernel holds a token's stored channels: its warps own 512 output columns.</summary>
    public static bool Fits(in HalfLayout layout) => layout.ChannelStride <= AttentionTensorCoreGpu.MaxChannels;

    /// <summary>Q, K, V and the output share <paramref name="layout"/>; the output's words are all written.</summary>
    public void Run(bool bf16, in HalfLayout layout, float scale, ArrayView<uint> q, ArrayView<uint> k, ArrayView<uint> v,
        ArrayView<uint> output)
    {
        if (!Fits(layout))
            throw new ArgumentOutOfRangeException(nameof(layout), layout.ChannelStride,
                $"tensor-core attention holds at most {AttentionTensorCoreGpu.MaxChannels} stored channels");
        if (layout.Batch == 0 || layout.Pixels == 0) return;
        var grid = new Index2D(DeviceMath.CeilDiv(layout.Pixels, AttentionTensorCoreGpu.QueryTile), layout.Batch);
        _kernels.Get(bf16)(stream, new KernelConfig(grid, new Index2D(AttentionTensorCoreGpu.GroupSize, 1)), layout, scale, q, k, v, output);
    }
}
