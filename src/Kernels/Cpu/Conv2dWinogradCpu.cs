using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeVae.Kernels.Cpu;

// Winograd F(4x4, 3x3) for 3x3 stride-1 "same" convolutions (Lavin & Gray, 2015): each 4x4 output tile is
//   Y = A^T [ (G g G^T) . (B^T d B) ] A
// over its 6x6 input patch d, so the 9 x 16 multiplies of a direct tile become 36 (4x fewer FMAs).
// A work item is a block of tiles of one image (R tile rows by Cp tile columns, Cp a whole number of vectors):
//   1. input transform: the patch rows are packed phase-split by column mod 4, so column 4t+k of tile t is
//      a contiguous lane run and every tile of a vector transforms at once; the 36 products land in
//      U [36][panel][Cin][panel tiles], a panel being the (up to 4 vectors of) tiles one micro-kernel call covers,
//      so that the call reads its inputs as one contiguous run (512-channel convolutions: 64x64 21.5 -> 18.5 ms);
//   2. 36 GEMMs M[xi] = W[xi] [Cout x Cin] x U[xi] [Cin x T] on the convolution micro-kernel (one tap);
//   3. output transform, then bias and residual, written to the tile's pixels inside the image.
// A fused nearest-2x upsample is expanded while packing, as in the direct path. The transforms cost about
// 20% of the GEMM at 128 channels; F(4x4) loses ~1 decimal digit against direct fp32 (transform constants up
// to 8 and 1/24), see Conv2dWinogradTests.

/// <summary>
/// Weights transformed for Winograd F(4x4, 3x3) (G g G^T per kernel), packed for the micro-kernel:
/// <c>[36][Cout / 4][Cin][4]</c>, the last output-channel block zero-padded: 4x the bytes of the 3x3 weights.
/// A view of a buffer the caller owns; <see cref="Transform"/> fills it. The backend transforms on every call into
/// one reused buffer instead of keeping a copy per weight, which would add 4x the model's 3x3 weights to memory.
/// </summary>
internal readonly unsafe struct Conv2dWinogradWeights
{
    private readonly float* _data;

    public Conv2dWinogradWeights(float* data, int outChannels, int inChannels)
    {
        _data = data;
        OutChannels = outChannels;
        InChannels = inChannels;
        Blocks = (outChannels + MicroKernelCpu.Rows - 1) / MicroKernelCpu.Rows;
        BlockFloats = (long)inChannels * MicroKernelCpu.Rows;
    }

    public int OutChannels { get; }
    public int InChannels { get; }
    public int Blocks { get; }
    public long BlockFloats { get; }

    /// <summary>Floats the transformed weights of a [Cout, Cin, 3, 3] convolution take.</summary>
    public static long FloatsFor(int outChannels, int inChannels) =>
        Conv2dWinogradCpu.Points * ((outChannels + MicroKernelCpu.Rows - 1) / MicroKernelCpu.Rows) * (long)inChannels * MicroKernelCpu.Rows;

    /// <summary>Output-channel block <paramref name="block"/> of transform point <paramref name="point"/>.</summary>
    public float* Block(int point, int block) => _data + (point * Blocks + block) * BlockFloats;

    /// <summary>
    /// Fills <paramref name="into"/> from row-major <c>[Cout, Cin, 3, 3]</c> <paramref name="weight"/>, one
    /// output-channel block per item on every worker: the block's taps are gathered into a per-worker
    /// <c>[9][Cin * 4]</c> scratch, then transformed a vector of (ci, row) pairs at a time.
    /// </summary>
    public static void Transform(CpuWorkers workers, SimdWidth width, float* weight, Conv2dWinogradWeights into)
    {
        long gather = Taps * into.BlockFloats;
        var job = new TransformJob
        {
            Weight = weight, Into = into, Gather = workers.ScratchTable(GatherSlot, gather), Width = width,
            Streaming = CacheHints.StreamsOutput(FloatsFor(into.OutChannels, into.InChannels)),
        };
        workers.Run(into.Blocks, ref job);
    }

    private const int Taps = Conv2dWinogradCpu.KernelSize * Conv2dWinogradCpu.KernelSize;
    private const int GatherSlot = 0;

    /// <summary>Input channels per gathered group: with 4 output channels, one 16-lane vector.</summary>
    private const int GatherChannels = 4;

    private struct TransformJob : IWorkItem
    {
        public float* Weight;
        public Conv2dWinogradWeights Into;
        public float** Gather;
        public SimdWidth Width;
        /// <summary>The transformed weights are larger than the L3 (512 x 512: 36 MiB): stored non-temporally, 1.7 -> 1.05 ms.</summary>
        public bool Streaming;

        public void Execute(int block, int worker)
        {
            TransformBlock(block, worker);
            if (Streaming) CacheHints.FenceStreamingStores();
        }

        private void TransformBlock(int block, int worker)
        {
            int rows = MicroKernelCpu.Rows;
            int run = checked((int)Into.BlockFloats); // Cin * 4: (ci, row) pairs, the destination's order
            int vectorized = 0;
            if (Width == SimdWidth.V512 && Avx2.IsSupported && (block + 1) * rows <= Into.OutChannels)
                vectorized = GatherTransform(block);

            // The rest (input channels past the last group of 4, a last block of fewer than 4 output channels, other
            // widths): gathered one value at a time into [9][Cin * 4], then transformed along that run.
            if (vectorized == Into.InChannels) return;
            float* taps = Gather[worker];
            for (int r = 0; r < rows; r++)
            {
                int co = block * rows + r;
                float* w = Weight + (long)co * Into.InChannels * Taps;
                for (int ci = vectorized; ci < Into.InChannels; ci++)
                for (int t = 0; t < Taps; t++)
                    taps[t * run + ci * rows + r] = co < Into.OutChannels ? w[ci * Taps + t] : 0f;
            }
            var body = new TransformRunBody { Job = this, Taps = taps, Run = run, Block = block, From = vectorized * rows };
            SimdDispatch.Run(Width, ref body);
        }

        /// <summary>
        /// The block's first Cin / 4 * 4 input channels straight from the row-major weights: for 4 input channels x
        /// 4 output channels (the destination's 16 consecutive floats), each tap's 16 values by two 8-lane gathers.
        /// Returns how many input channels it did.
        /// </summary>
        private int GatherTransform(int block)
        {
            int rows = MicroKernelCpu.Rows;
            int groups = Into.InChannels / GatherChannels;
            long rowStride = (long)Into.InChannels * Taps;
            // Lane (ci, r) of a group reads weight[block * 4 + r][ci0 + ci][t]: offset r * Cin * 9 + ci * 9 + t.
            var low = Vector256.Create(0, 1, 2, 3, 0, 1, 2, 3) * (int)rowStride + Vector256.Create(0, 0, 0, 0, 1, 1, 1, 1) * Taps;
            var high = low + Vector256.Create(2 * Taps);
            float* first = Weight + block * rows * rowStride;
            Vector512<float>* g = stackalloc Vector512<float>[Taps];
            for (int group = 0; group < groups; group++)
            {
                float* w = first + group * GatherChannels * Taps;
                for (int t = 0; t < Taps; t++)
                {
                    var tap = Vector256.Create(t);
                    g[t] = Vector512.Create(Avx2.GatherVector256(w, low + tap, sizeof(float)), Avx2.GatherVector256(w, high + tap, sizeof(float)));
                }
                TransformAt<Vector512<float>, V512Ops>(g, block, group * GatherChannels * rows);
            }
            return groups * GatherChannels;
        }

        private struct TransformRunBody : ISimdBody
        {
            public TransformJob Job;
            public float* Taps;
            public int Run;
            public int Block;
            public int From;

            public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> =>
                Job.TransformRun<TVec, TOps>(Taps, Run, Block, From);
        }

        private void TransformRun<TVec, TOps>(float* taps, int run, int block, int from)
            where TVec : unmanaged where TOps : IVectorOps<TVec>
        {
            TVec* g = stackalloc TVec[Taps];
            int i = from;
            for (; i + TOps.Lanes <= run; i += TOps.Lanes) TransformAt<TVec, TOps>(Load<TVec, TOps>(taps, run, i, g), block, i);
            float* one = stackalloc float[Taps];
            for (; i < run; i++) TransformAt<float, ScalarOps>(Load<float, ScalarOps>(taps, run, i, one), block, i);
        }

        /// <summary>The 9 taps of the gathered run at <paramref name="i"/>, into <paramref name="g"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static TVec* Load<TVec, TOps>(float* taps, int run, int i, TVec* g)
            where TVec : unmanaged where TOps : IVectorOps<TVec>
        {
            for (int t = 0; t < Taps; t++) g[t] = TOps.Load(taps + t * run + i);
            return g;
        }

        /// <summary>G g G^T for the kernels whose taps are <paramref name="g"/> (row-major 3x3), to all 36 points at (ci, row) pair i.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void TransformAt<TVec, TOps>(TVec* g, int block, int i)
            where TVec : unmanaged where TOps : IVectorOps<TVec>
        {
            const int k = Conv2dWinogradCpu.KernelSize, n = Conv2dWinogradCpu.TileInput;
            TVec* columns = stackalloc TVec[n * k]; // G applied down each kernel column: [6][3]
            for (int c = 0; c < k; c++) ApplyG<TVec, TOps>(g[c], g[k + c], g[2 * k + c], columns + c, k);
            TVec* point = stackalloc TVec[n];
            for (int r = 0; r < n; r++)
            {
                ApplyG<TVec, TOps>(columns[r * k], columns[r * k + 1], columns[r * k + 2], point, 1);
                for (int j = 0; j < n; j++) CacheHints.Store<TVec, TOps>(Into.Block(r * n + j, block) + i, point[j], Streaming);
            }
        }

        /// <summary>The six rows of G applied to one kernel row or column (g0, g1, g2).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void ApplyG<TVec, TOps>(TVec g0, TVec g1, TVec g2, TVec* o, int step)
            where TVec : unmanaged where TOps : IVectorOps<TVec>
        {
            TVec outer = TOps.Add(g0, g2);
            TVec sixth = TOps.Broadcast(-1f / 6);
            TVec quarter = TOps.Multiply(g0, TOps.Broadcast(1f / 24));
            TVec half = TOps.MulAdd(g2, TOps.Broadcast(1f / 6), quarter); // g0 / 24 + g2 / 6
            TVec twelfth = TOps.Multiply(g1, TOps.Broadcast(1f / 12));
            o[0] = TOps.Multiply(g0, TOps.Broadcast(0.25f));
            o[step] = TOps.Multiply(TOps.Add(outer, g1), sixth);
            o[2 * step] = TOps.Multiply(TOps.Subtract(outer, g1), sixth);
            o[3 * step] = TOps.Add(half, twelfth);
            o[4 * step] = TOps.Subtract(half, twelfth);
            o[5 * step] = g2;
        }
    }
}

internal static unsafe class Conv2dWinogradCpu
{
    public const int KernelSize = 3;
    /// <summary>Output tile side.</summary>
    public const int TileOutput = 4;
    /// <summary>Input patch side: TileOutput + KernelSize - 1.</summary>
    public const int TileInput = 6;
    /// <summary>Transform points per tile: TileInput squared.</summary>
    public const int Points = TileInput * TileInput;

    /// <summary>Fewest input and output channels for which the transforms pay for themselves.</summary>
    public const int MinChannels = 64;

    /// <summary>Tile items per worker we aim for, so that dynamic scheduling can balance them.</summary>
    private const int ItemsPerWorker = 2;

    /// <summary>Output-channel blocks (of 4) per pass: M, the GEMM's output, holds 128 channels at a time.</summary>
    private const int OutputChunkBlocks = 32;

    /// <summary>Cin x Cout from which the transformed weights (36 x Cin x Cout floats) are far larger than L3.</summary>
    private const long WeightBoundChannelProduct = 384 * 384;

    /// <summary>Tiles per item for such convolutions: one transform point's U (512 x 256 floats) fills half of L2.</summary>
    private const int WeightBoundTiles = 256;

    /// <summary>
    /// How many output-channel blocks ahead the GEMM prefetches transformed weights: at 256-512 channels they come
    /// from L3 or memory (9-36 MiB), and the prefetch saves 4-7% of the convolution.
    /// </summary>
    private const int WeightPrefetchBlocks = 2;

    private const int WorkSlot = 0;
    private const int TapSlot = 1;
    private const int WeightSlot = 2;
    private const int MomentSlot = 3;

    /// <summary>Whether this convolution is one the Winograd path computes: 3x3, stride 1, output the (virtual) input's size.</summary>
    public static bool Supports(in Conv2dParams p)
    {
        if (p.Kernel != KernelSize || p.Stride != 1) return false;
        // The upsampled packing's permutes assume an odd first virtual column (pad 1): untiled "same" convolutions.
        if (p.Upsample2x != 0)
            return p.PadTop == 1 && p.PadLeft == 1 && p.OutHeight == 2 * p.InHeight && p.OutWidth == 2 * p.InWidth;
        // Any pad of 0 or 1 per side: exact tiling convolves windows whose sides are padded only at the image's edge.
        return IsHaloPad(p.PadTop) && IsHaloPad(p.PadLeft)
            && IsHaloPad(p.OutHeight + KernelSize - 1 - p.InHeight - p.PadTop)
            && IsHaloPad(p.OutWidth + KernelSize - 1 - p.InWidth - p.PadLeft);
    }

    /// <summary>A pad the packing handles: none, or the one row or column a 3x3 "same" convolution adds.</summary>
    private static bool IsHaloPad(int pad) => pad is 0 or 1;

    /// <summary>
    /// y = conv(f(x), w) (+ bias) (+ residual), as <c>Conv2dCpu.Run</c>, for a convolution <see cref="Supports"/>
    /// accepts; <paramref name="weight"/> is row-major <c>[Cout, Cin, 3, 3]</c> and is transformed on every call into
    /// the workers' shared scratch (see <see cref="Conv2dWinogradWeights"/>).
    /// </summary>
    /// <param name="moments">When given, [N * Cout][2] doubles receive each output channel's mean and M2 (sum of
    /// squared deviations from it): the following GroupNorm's statistics, gathered while the outputs are in
    /// registers (sums of <c>y - bias</c>, the bias being near the mean, so the squares do not cancel).</param>
    public static void Run(CpuWorkers workers, SimdWidth width, in Conv2dParams p, float* x, float* weight,
        float* bias, float* residual, float* y, InputAffine affine = default, double* moments = null) =>
        Run(workers, width, p, new StoredElements(x, StorageType.F32), weight, bias, new StoredElements(residual, StorageType.F32),
            new StoredElements(y, StorageType.F32), affine, moments);

    /// <summary>
    /// The same on tensors of any storage type (the weight fp32): 16-bit input rows are widened as they are packed,
    /// 16-bit output rows (and their residual) are assembled in fp32 and narrowed. The moments are those of the fp32
    /// results, before rounding.
    /// </summary>
    public static void Run(CpuWorkers workers, SimdWidth width, in Conv2dParams p, StoredElements x, float* weight,
        float* bias, StoredElements residual, StoredElements y, InputAffine affine = default, double* moments = null)
    {
        if (!Supports(p))
            throw new ArgumentException($"Winograd conv2d needs a 3x3 stride-1 convolution padded 0 or 1 per side (pad 1 and same size when upsampling), got kernel {p.Kernel}, stride {p.Stride}, pad {p.PadTop}/{p.PadLeft}", nameof(p));
        if (p.Batch == 0 || p.OutChannels == 0 || p.OutHeight == 0 || p.OutWidth == 0) return;
        var w = new Conv2dWinogradWeights(
            workers.SharedScratch(WeightSlot, Conv2dWinogradWeights.FloatsFor(p.OutChannels, p.InChannels)), p.OutChannels, p.InChannels);
        Conv2dWinogradWeights.Transform(workers, width, weight, w);
        // Per-worker moment sums, reduced after the job (items of one channel run on any worker).
        long momentDoubles = moments == null ? 0 : 2L * p.Batch * p.OutChannels;
        double** partial = moments == null ? null : (double**)workers.ScratchTable(MomentSlot, 2 * momentDoubles);
        for (int k = 0; partial != null && k < workers.Count; k++) new Span<double>(partial[k], (int)momentDoubles).Clear();
        var body = new RunBody
        {
            Workers = workers, P = p, X = x, W = w, Bias = bias, Residual = residual, Y = y, Affine = affine, Partial = partial,
        };
        SimdDispatch.Run(width, ref body);
        double count = (double)p.OutHeight * p.OutWidth;
        for (long i = 0; i < momentDoubles; i += 2)
        {
            double sum = 0, squares = 0;
            for (int k = 0; k < workers.Count; k++)
            {
                sum += partial[k][i];
                squares += partial[k][i + 1];
            }
            float center = bias != null ? bias[i / 2 % p.OutChannels] : 0f;
            moments[i] = center + sum / count;
            moments[i + 1] = Math.Max(squares - sum * sum / count, 0);
        }
    }

    private static void Run<TVec, TOps>(CpuWorkers workers, in Conv2dParams p, StoredElements x, Conv2dWinogradWeights w,
        float* bias, StoredElements residual, StoredElements y, InputAffine affine, double** moments)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        var job = new WinogradJob<TVec, TOps>
        {
            P = p, X = x, W = w.Block(0, 0), WBlockFloats = w.BlockFloats, WBlocks = w.Blocks,
            Bias = bias, Residual = residual, Y = y, Affine = affine, Moments = moments,
        };
        job.Plan(workers.Count);
        job.Work = workers.ScratchTable(WorkSlot, job.WorkFloats);
        job.ZeroTap = (int*)workers.SharedScratch(TapSlot, 1);
        *job.ZeroTap = 0;
        workers.Run(job.ItemCount, ref job);
    }

    private struct RunBody : ISimdBody
    {
        public CpuWorkers Workers;
        public Conv2dParams P;
        public StoredElements X;
        public Conv2dWinogradWeights W;
        public float* Bias;
        public StoredElements Residual;
        public StoredElements Y;
        public InputAffine Affine;
        public double** Partial;

        public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> =>
            Run<TVec, TOps>(Workers, P, X, W, Bias, Residual, Y, Affine, Partial);
    }

    private struct WinogradJob<TVec, TOps> : IWorkItem where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        public Conv2dParams P;
        public StoredElements X;
        public float* W;
        public long WBlockFloats;
        public int WBlocks;
        public float* Bias;
        public StoredElements Residual;
        public StoredElements Y;
        public float** Work;
        public int* ZeroTap;
        public InputAffine Affine;
        public double** Moments;
        public bool Streaming;

        public int TilesY;
        public int TilesX;
        public int GroupCols;   // tile columns per item
        public int PaddedCols;  // GroupCols rounded up to whole vectors: the row pitch of U and M
        public int GroupRows;   // tile rows per item
        public int PanelRows;   // tile rows per U panel: the tiles one micro-kernel call covers
        public int PanelTiles;  // PanelRows * PaddedCols
        public int Tiles;       // GroupRows * PaddedCols, rounded up to whole panels
        public int ChunkBlocks; // output-channel blocks per GEMM + output transform pass
        public int ColGroups;
        public int RowGroups;
        public int PackWidth;
        public long WorkFloats;
        public int ItemCount;

        public void Plan(int workers)
        {
            int lanes = TOps.Lanes;
            int most = MicroKernelCpu.Vectors<TVec, TOps>() * lanes;
            TilesY = (P.OutHeight + TileOutput - 1) / TileOutput;
            TilesX = (P.OutWidth + TileOutput - 1) / TileOutput;
            GroupCols = Math.Min(TilesX, most);
            PaddedCols = RoundUp(GroupCols, lanes);
            ColGroups = (TilesX + GroupCols - 1) / GroupCols;
            // Every item streams all the transformed weights past its tiles: where they are far larger than the
            // caches (512 channels: 36 MiB), more tiles per item read them fewer times; U for one point (Cin x Tiles)
            // still fits L2. Rows are then split evenly, into at least ItemsPerWorker items per worker.
            bool weightBound = (long)P.InChannels * P.OutChannels >= WeightBoundChannelProduct;
            int maxTiles = weightBound ? WeightBoundTiles : most;
            int maxRows = Math.Max(1, Math.Min(TilesY, maxTiles / PaddedCols));
            int perImage = Math.Max(1, workers * (weightBound ? 1 : ItemsPerWorker) / Math.Max(1, P.Batch * ColGroups));
            RowGroups = Math.Min(TilesY, Math.Max((TilesY + maxRows - 1) / maxRows, perImage));
            GroupRows = (TilesY + RowGroups - 1) / RowGroups;
            RowGroups = (TilesY + GroupRows - 1) / GroupRows;
            PanelRows = Math.Max(1, most / PaddedCols);
            PanelTiles = PanelRows * PaddedCols;
            Tiles = RoundUp(GroupRows, PanelRows) * PaddedCols;
            // Tile t's columns 4t..4t+5 are phase (k mod 4) at t + k / 4: one extra column, read as a whole vector.
            PackWidth = PaddedCols + lanes;
            ChunkBlocks = Math.Min(WBlocks, OutputChunkBlocks);
            WorkFloats = (long)Points * Tiles * (P.InChannels + ChunkBlocks * MicroKernelCpu.Rows)
                + (long)PatchSpan(GroupRows) * TileOutput * PackWidth + (long)(Points + 2 * TileInput) * lanes // + transform vectors and one output row
                + (long)TileOutput * PackWidth // one contiguous input row, for the vector phase split
                + (X.IsF32 ? 0 : WidenedFloats); // the widened source segment of a 16-bit input row
            ItemCount = checked(P.Batch * RowGroups * ColGroups);
            // A 16-bit output is assembled in scratch and narrowed: nothing to stream.
            Streaming = Y.IsF32 && CacheHints.StreamsOutput((long)P.Batch * P.OutChannels * P.OutHeight * P.OutWidth);
        }

        /// <summary>
        /// Floats of a 16-bit input row's widened segment: the source columns one packed row reads, 4 PackWidth
        /// virtual columns (half as many source columns when upsampled, plus the vector the upsampled split reads past them).
        /// </summary>
        private readonly int WidenedFloats => TileOutput * PackWidth + TOps.Lanes;

        public void Execute(int item, int worker)
        {
            int n = item / (RowGroups * ColGroups);
            int rest = item % (RowGroups * ColGroups);
            int ty0 = rest / ColGroups * GroupRows;
            int tx0 = rest % ColGroups * GroupCols;
            int chunkRows = ChunkBlocks * MicroKernelCpu.Rows;
            float* u = Work[worker];
            float* m = u + (long)Points * P.InChannels * Tiles;
            float* pack = m + (long)Points * chunkRows * Tiles;
            float* vectors = pack + (long)PatchSpan(GroupRows) * TileOutput * PackWidth;
            float* line = vectors + (Points + 2 * TileInput) * TOps.Lanes;
            int rows = Math.Min(GroupRows, TilesY - ty0);
            int cols = Math.Min(GroupCols, TilesX - tx0);

            const int pd = CacheHints.PrefetchChannels;
            for (int ci = 0; ci < P.InChannels; ci++)
            {
                if (ci + pd < P.InChannels) Prefetch(n, ci + pd, ty0, rows, tx0, cols);
                Pack(pack, line, n, ci, ty0, rows, tx0);
                for (int r = 0; r < rows; r++)
                    TransformInput(pack + (long)r * TileOutput * TileOutput * PackWidth, u + ((long)(r / PanelRows) * P.InChannels + ci) * PanelTiles + r % PanelRows * PaddedCols, (TVec*)vectors);
            }
            // Tile rows past the image's last are left as they are: their results are never written out.

            var t = new MicroTask
            {
                TapOffsets = ZeroTap,
                TapCount = 1,
                ReduceCount = P.InChannels,
                InputStride = PanelTiles,
                OutputRowStride = Tiles,
                ValidRows = MicroKernelCpu.Rows,
                LastVectorLanes = TOps.Lanes,
                Epilogue = MicroEpilogue.Store,
            };
            // Rows past the image are skipped: the GEMM runs over the first `rows` tile rows only. Output channels
            // go in chunks, so that M holds one chunk (its output transform reads it while it is still in cache).
            long mPoint = (long)chunkRows * Tiles;
            for (int cb0 = 0; cb0 < WBlocks; cb0 += ChunkBlocks)
            {
                int cbEnd = Math.Min(WBlocks, cb0 + ChunkBlocks);
                for (int xi = 0; xi < Points; xi++)
                for (int cb = cb0; cb < cbEnd; cb++)
                {
                    t.Weights = W + (xi * WBlocks + cb) * WBlockFloats;
                    // The blocks are read in memory order (but at chunk ends): fetch the one after next into L2.
                    CacheHints.PrefetchToL2(t.Weights + WeightPrefetchBlocks * WBlockFloats, WBlockFloats * sizeof(float));
                    float* o = m + xi * mPoint + (long)(cb - cb0) * MicroKernelCpu.Rows * Tiles;
                    for (int r0 = 0; r0 < rows; r0 += PanelRows)
                    {
                        t.Input = u + ((long)xi * Tiles + r0 * PaddedCols) * P.InChannels;
                        t.Output = o + r0 * PaddedCols;
                        MicroKernelCpu.Run<TVec, TOps>(t, Math.Min(PanelRows, rows - r0) * PaddedCols / TOps.Lanes);
                    }
                }

                int co0 = cb0 * MicroKernelCpu.Rows, coEnd = Math.Min(P.OutChannels, cbEnd * MicroKernelCpu.Rows);
                for (int co = co0; co < coEnd; co++)
                {
                    if (Residual.IsF32 && !Residual.IsNull && co + CacheHints.PrefetchChannels < P.OutChannels)
                        PrefetchResidual(n, co + CacheHints.PrefetchChannels, ty0, rows, tx0, cols);
                    for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c += TOps.Lanes)
                        TransformOutput(m + (long)(co - co0) * Tiles + r * PaddedCols + c, mPoint, (TVec*)vectors,
                            n, co, ty0 + r, tx0 + c, Math.Min(TOps.Lanes, cols - c),
                            Moments == null ? null : Moments[worker] + 2 * ((long)n * P.OutChannels + co));
                }
            }
            if (Streaming) CacheHints.FenceStreamingStores();
        }

        /// <summary>Input rows (or columns) the patches of <paramref name="tiles"/> consecutive tiles span (they overlap by two).</summary>
        private static int PatchSpan(int tiles) => TileOutput * tiles + TileInput - TileOutput;

        /// <summary>Prefetches the input rows and columns that <see cref="Pack"/> reads for this item's tiles of channel ci.</summary>
        private void Prefetch(int n, int ci, int ty0, int rows, int tx0, int cols)
        {
            if (!X.IsF32) return;
            int y0 = TileOutput * ty0 - P.PadTop, x0 = TileOutput * tx0 - P.PadLeft;
            CacheHints.PrefetchRows(X.F32 + ((long)n * P.InChannels + ci) * P.InHeight * P.InWidth, P.InHeight, P.InWidth,
                y0, y0 + PatchSpan(rows), x0, x0 + PatchSpan(cols), P.Upsample2x != 0);
        }

        /// <summary>Prefetches the residual pixels of this item's tiles in output channel co.</summary>
        private void PrefetchResidual(int n, int co, int ty0, int rows, int tx0, int cols)
        {
            int y0 = TileOutput * ty0, x0 = TileOutput * tx0;
            CacheHints.PrefetchRows(Residual.F32 + ((long)n * P.OutChannels + co) * P.OutHeight * P.OutWidth, P.OutHeight, P.OutWidth,
                y0, y0 + TileOutput * rows, x0, x0 + TileOutput * cols, upsampled: false);
        }

        /// <summary>
        /// Packs the input rows of tile rows ty .. ty + tileRows - 1 for tile columns tx0.. of channel ci, each row once
        /// (a tile row's 6-row patches overlap the next one's by 2): [row][phase][PackWidth], element (i, k, t) =
        /// virtual input (4 ty - 1 + i, 4 (tx0 + t) - 1 + k), zero outside.
        /// <paramref name="line"/> is scratch for one contiguous row (4 PackWidth floats).
        /// </summary>
        private void Pack(float* pack, float* line, int n, int ci, int ty, int tileRows, int tx0)
        {
            bool up = P.Upsample2x != 0;
            int hv = up ? 2 * P.InHeight : P.InHeight;
            int wv = up ? 2 * P.InWidth : P.InWidth;
            long channel = (long)n * P.InChannels + ci;
            long plane = (long)P.InHeight * P.InWidth;
            // A 16-bit row is read only in [sourceLo, sourceHi): widened past the phase-split line, then addressed as the row.
            float* widened = line + TileOutput * PackWidth;
            int virtualLo = TileOutput * tx0 - P.PadLeft;
            int sourceLo = Math.Clamp(up ? virtualLo >> 1 : virtualLo, 0, P.InWidth);
            int sourceHi = Math.Clamp(sourceLo + (up ? 2 * PackWidth + TOps.Lanes : TileOutput * PackWidth), sourceLo, P.InWidth);
            for (int i = 0, end = PatchSpan(tileRows); i < end; i++)
            {
                int yv = TileOutput * ty - P.PadTop + i;
                float* dst = pack + i * TileOutput * PackWidth;
                if ((uint)yv >= (uint)hv)
                {
                    new Span<float>(dst, TileOutput * PackWidth).Clear();
                    continue;
                }
                if (up && i > 0 && (yv & 1) == 1) // the same source row as the row above
                {
                    new Span<float>(dst - TileOutput * PackWidth, TileOutput * PackWidth).CopyTo(new Span<float>(dst, TileOutput * PackWidth));
                    continue;
                }
                float* row = X.RowWindow(channel * plane + (long)(up ? yv >> 1 : yv) * P.InWidth, sourceLo, sourceHi, widened);
                if (typeof(TVec) == typeof(Vector512<float>) && Avx512F.IsSupported)
                {
                    if (!up)
                        SplitRow(row, line, dst, channel, TileOutput * tx0 - P.PadLeft, wv);
                    else
                        SplitUpsampledRow(row, line, dst, channel, TileOutput * tx0 - P.PadLeft);
                    continue;
                }
                if (typeof(TVec) == typeof(Vector256<float>) && Avx2.IsSupported && !up)
                {
                    SplitRow256(row, line, dst, channel, TileOutput * tx0 - P.PadLeft, wv);
                    continue;
                }
                for (int phase = 0; phase < TileOutput; phase++, dst += PackWidth)
                {
                    int xv0 = TileOutput * tx0 - P.PadLeft + phase;
                    // Packed columns j in [lo, hi) read virtual columns xv0 + 4 j inside [0, wv).
                    int lo = xv0 >= 0 ? 0 : Math.Min(PackWidth, (-xv0 + TileOutput - 1) / TileOutput);
                    int hi = Math.Clamp(wv - xv0 <= 0 ? 0 : (wv - xv0 + TileOutput - 1) / TileOutput, lo, PackWidth);
                    new Span<float>(dst, lo).Clear();
                    new Span<float>(dst + hi, PackWidth - hi).Clear();
                    if (up)
                        for (int j = lo; j < hi; j++) dst[j] = row[(xv0 + TileOutput * j) >> 1];
                    else
                        for (int j = lo; j < hi; j++) dst[j] = row[xv0 + TileOutput * j];
                    if (Affine.IsActive) Affine.Apply<TVec, TOps>(channel, dst + lo, dst + lo, hi - lo);
                }
            }
        }

        /// <summary>
        /// The AVX-512 packing of one (not upsampled) row: columns x0 .. x0 + 4 PackWidth of it (zero outside
        /// [0, width)) are copied contiguously into <paramref name="line"/>, the input affine applied on the way
        /// (once per value, not once per phase), then split by column mod 4 with two rounds of two-source permutes.
        /// </summary>
        private void SplitRow(float* row, float* line, float* dst, long channel, int x0, int width)
        {
            int count = TileOutput * PackWidth; // a whole number of 4-vector groups: PackWidth is whole vectors
            // The tiles read columns up to 4 PaddedCols + 1 (a tile's 6 columns overlap the next's by 2); past that
            // the packing is whole-vector padding, left zero rather than normalised.
            int used = Math.Min(count, TileOutput * PaddedCols + TileInput - TileOutput);
            Affine.CopyRow<TVec, TOps>(channel, row, x0, width, line, count, used);

            var even = PhaseSplit.Even;
            var odd = PhaseSplit.Odd;
            for (int g = 0, j = 0; g < count; g += 4 * PhaseSplit.Lanes, j += PhaseSplit.Lanes)
            {
                var a = Vector512.Load(line + g);
                var b = Vector512.Load(line + g + PhaseSplit.Lanes);
                var c = Vector512.Load(line + g + 2 * PhaseSplit.Lanes);
                var d = Vector512.Load(line + g + 3 * PhaseSplit.Lanes);
                // Round 1: columns 0 and 2 mod 4 (even positions), 1 and 3 mod 4 (odd), 16 of each per pair.
                var evenAb = Avx512F.PermuteVar16x32x2(a, even, b);
                var oddAb = Avx512F.PermuteVar16x32x2(a, odd, b);
                var evenCd = Avx512F.PermuteVar16x32x2(c, even, d);
                var oddCd = Avx512F.PermuteVar16x32x2(c, odd, d);
                // Round 2: even positions of (0, 2) interleaved are phase 0, odd ones phase 2; likewise 1 and 3.
                Avx512F.PermuteVar16x32x2(evenAb, even, evenCd).Store(dst + j);
                Avx512F.PermuteVar16x32x2(oddAb, even, oddCd).Store(dst + PackWidth + j);
                Avx512F.PermuteVar16x32x2(evenAb, odd, evenCd).Store(dst + 2 * PackWidth + j);
                Avx512F.PermuteVar16x32x2(oddAb, odd, oddCd).Store(dst + 3 * PackWidth + j);
            }
        }

        /// <summary>
        /// <see cref="SplitRow"/> with AVX2's permutes: 8 tiles' 4 phases from 4 vectors. Each vector's two tiles are
        /// permuted so that a phase's pair is one 64-bit element, pairs of vectors interleave those (phases 0 and 2,
        /// 1 and 3 in the two 128-bit halves), and the halves of two such are each phase's 8 tiles.
        /// </summary>
        private void SplitRow256(float* row, float* line, float* dst, long channel, int x0, int width)
        {
            const int Lanes = 8;
            int count = TileOutput * PackWidth; // whole groups of 4 vectors: PackWidth is whole vectors
            int used = Math.Min(count, TileOutput * PaddedCols + TileInput - TileOutput);
            Affine.CopyRow<TVec, TOps>(channel, row, x0, width, line, count, used);

            var pairs = Vector256.Create(0, 4, 1, 5, 2, 6, 3, 7);
            for (int g = 0, j = 0; g < count; g += TileOutput * Lanes, j += Lanes)
            {
                var a = Avx2.PermuteVar8x32(Vector256.Load(line + g), pairs).AsDouble();
                var b = Avx2.PermuteVar8x32(Vector256.Load(line + g + Lanes), pairs).AsDouble();
                var c = Avx2.PermuteVar8x32(Vector256.Load(line + g + 2 * Lanes), pairs).AsDouble();
                var d = Avx2.PermuteVar8x32(Vector256.Load(line + g + 3 * Lanes), pairs).AsDouble();
                var evenAb = Avx.UnpackLow(a, b); // phase 0 | phase 2
                var evenCd = Avx.UnpackLow(c, d);
                var oddAb = Avx.UnpackHigh(a, b); // phase 1 | phase 3
                var oddCd = Avx.UnpackHigh(c, d);
                Avx.Permute2x128(evenAb, evenCd, LowHalves).AsSingle().Store(dst + j);
                Avx.Permute2x128(oddAb, oddCd, LowHalves).AsSingle().Store(dst + PackWidth + j);
                Avx.Permute2x128(evenAb, evenCd, HighHalves).AsSingle().Store(dst + 2 * PackWidth + j);
                Avx.Permute2x128(oddAb, oddCd, HighHalves).AsSingle().Store(dst + 3 * PackWidth + j);
            }
        }

        /// <summary>vperm2f128 selectors: the low 128 bits of both sources, or the high 128 bits of both.</summary>
        private const byte LowHalves = 0x20, HighHalves = 0x31;

        /// <summary>
        /// The AVX-512 packing of one row of a nearest-2x upsampled input, read from the source row: virtual column
        /// x0 + 4 j + k is source column (x0 + k) / 2 + 2 j (x0 odd: the pad), so with line[i] = source column
        /// (x0 - 1) / 2 + i, phase 0 is line's even columns, phases 1 and 2 its odd ones, and phase 3 the even columns
        /// of line + 2. Each source value is normalised once, where the generic path does it per virtual column.
        /// </summary>
        private void SplitUpsampledRow(float* row, float* line, float* dst, long channel, int x0)
        {
            int count = 2 * PackWidth + PhaseSplit.Lanes; // whole vectors, and the 2 columns past them phase 3 reads
            Affine.CopyRow<TVec, TOps>(channel, row, x0 >> 1, P.InWidth, line, count, Math.Min(count, 2 * PaddedCols + TileInput / 2));
            var even = PhaseSplit.Even;
            var odd = PhaseSplit.Odd;
            for (int g = 0, j = 0; j < PackWidth; g += 2 * PhaseSplit.Lanes, j += PhaseSplit.Lanes)
            {
                var a = Vector512.Load(line + g);
                var b = Vector512.Load(line + g + PhaseSplit.Lanes);
                var oddColumns = Avx512F.PermuteVar16x32x2(a, odd, b);
                Avx512F.PermuteVar16x32x2(a, even, b).Store(dst + j);
                oddColumns.Store(dst + PackWidth + j);
                oddColumns.Store(dst + 2 * PackWidth + j);
                var shiftedA = Vector512.Load(line + g + 2);
                var shiftedB = Vector512.Load(line + g + 2 + PhaseSplit.Lanes);
                Avx512F.PermuteVar16x32x2(shiftedA, even, shiftedB).Store(dst + 3 * PackWidth + j);
            }
        }

        /// <summary>B^T d B for every tile of one packed tile row, written to U at [point][.][column].</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void TransformInput(float* pack, float* u, TVec* rowsDone)
        {
            long point = (long)P.InChannels * Tiles;
            for (int c = 0; c < PaddedCols; c += TOps.Lanes)
            {
                // Along each patch row (B applied on the right), then down the columns (B^T on the left).
                for (int i = 0; i < TileInput; i++)
                {
                    float* row = pack + i * TileOutput * PackWidth + c;
                    InputPoints(
                        TOps.Load(row), TOps.Load(row + PackWidth), TOps.Load(row + 2 * PackWidth),
                        TOps.Load(row + 3 * PackWidth), TOps.Load(row + 1), TOps.Load(row + PackWidth + 1),
                        rowsDone + i * TileInput, 1);
                }
                for (int j = 0; j < TileInput; j++)
                {
                    TVec* col = rowsDone + j;
                    TVec* result = rowsDone + Points; // six more vectors past the row results
                    InputPoints(col[0], col[TileInput], col[2 * TileInput], col[3 * TileInput], col[4 * TileInput], col[5 * TileInput], result, 1);
                    for (int i = 0; i < TileInput; i++) TOps.Store(u + (i * TileInput + j) * point + c, result[i]);
                }
            }
        }

        /// <summary>A^T m A for one vector of tiles of output channel co, plus bias and residual, to the image.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void TransformOutput(float* m, long point, TVec* scratch, int n, int co, int ty, int tx, int tiles, double* moments)
        {
            TVec* rowsDone = scratch; // [6][4]
            for (int i = 0; i < TileInput; i++)
            {
                float* row = m + i * TileInput * point;
                OutputPoints(TOps.Load(row), TOps.Load(row + point), TOps.Load(row + 2 * point),
                    TOps.Load(row + 3 * point), TOps.Load(row + 4 * point), TOps.Load(row + 5 * point),
                    rowsDone + i * TileOutput, 1);
            }
            TVec* result = scratch + TileInput * TileOutput; // [4][4] vectors, [y][x]
            for (int j = 0; j < TileOutput; j++)
            {
                TVec* col = rowsDone + j;
                OutputPoints(col[0], col[TileOutput], col[2 * TileOutput], col[3 * TileOutput], col[4 * TileOutput], col[5 * TileOutput],
                    result + j, TileOutput);
            }

            // Tile t's column xx is lane t of result vector (y, xx): interleave one output row into `line`, then
            // add bias and residual a whole vector at a time.
            float* lanes = (float*)result;
            float* line = (float*)(result + TileOutput * TileOutput);
            int l = TOps.Lanes;
            int width = Math.Min(TileOutput * tiles, P.OutWidth - TileOutput * tx);
            int whole = width / l * l;
            float b = Bias != null ? Bias[co] : 0f;
            TVec bias = TOps.Broadcast(b);
            long rowStart = ((long)n * P.OutChannels + co) * P.OutHeight * P.OutWidth + (long)TileOutput * tx;
            TVec sum = TOps.Zero, squares = TOps.Zero;
            double tailSum = 0, tailSquares = 0;
            for (int y = 0; y < TileOutput; y++)
            {
                int oy = TileOutput * ty + y;
                if (oy >= P.OutHeight) break;
                float* src = lanes + y * TileOutput * l;
                if (typeof(TVec) == typeof(Vector512<float>) && Avx512F.IsSupported)
                    InterleaveRow((Vector512<float>*)src, line);
                else if (typeof(TVec) == typeof(Vector256<float>) && Avx2.IsSupported)
                    InterleaveRow256((Vector256<float>*)src, line);
                else
                    for (int t = 0; t < tiles; t++)
                    {
                        line[TileOutput * t] = src[t];
                        line[TileOutput * t + 1] = src[l + t];
                        line[TileOutput * t + 2] = src[2 * l + t];
                        line[TileOutput * t + 3] = src[3 * l + t];
                    }
                long o = rowStart + (long)oy * P.OutWidth;
                // A 16-bit output row is finished in `line` (in place) and narrowed; its residual widened past it.
                float* dst = Y.IsF32 ? Y.F32 + o : line;
                float* residual = Residual.IsNull ? null : Residual.ReadOrPoint(o, line + TileOutput * l, width);
                int i = 0;
                for (; i < whole; i += l)
                {
                    // d = y - bias: the moments are taken about the bias, close to the channel's mean.
                    TVec d = TOps.Load(line + i);
                    if (residual != null) d = TOps.Add(d, TOps.Load(residual + i));
                    CacheHints.Store<TVec, TOps>(dst + i, TOps.Add(d, bias), Streaming);
                    if (moments == null) continue;
                    sum = TOps.Add(sum, d);
                    squares = TOps.MulAdd(d, d, squares);
                }
                for (; i < width; i++)
                {
                    float d = line[i] + (residual != null ? residual[i] : 0f);
                    dst[i] = d + b;
                    tailSum += d;
                    tailSquares += d * d;
                }
                if (!Y.IsF32) Y.Write(o, line, width);
            }
            if (moments == null) return;
            moments[0] += TOps.Sum(sum) + tailSum;
            moments[1] += TOps.Sum(squares) + tailSquares;
        }

        /// <summary>
        /// The AVX-512 inverse of <see cref="SplitRow"/>: 16 tiles' output columns 0..3 (one vector each) become 64
        /// contiguous columns, by two rounds of two-source permutes.
        /// </summary>
        private static void InterleaveRow(Vector512<float>* columns, float* line)
        {
            var low = PhaseSplit.InterleaveLow;
            var high = PhaseSplit.InterleaveHigh;
            // Round 1: columns 0 with 2, and 1 with 3, pairwise; round 2: those pairs with each other.
            var zeroTwoLow = Avx512F.PermuteVar16x32x2(columns[0], low, columns[2]);
            var zeroTwoHigh = Avx512F.PermuteVar16x32x2(columns[0], high, columns[2]);
            var oneThreeLow = Avx512F.PermuteVar16x32x2(columns[1], low, columns[3]);
            var oneThreeHigh = Avx512F.PermuteVar16x32x2(columns[1], high, columns[3]);
            Avx512F.PermuteVar16x32x2(zeroTwoLow, low, oneThreeLow).Store(line);
            Avx512F.PermuteVar16x32x2(zeroTwoLow, high, oneThreeLow).Store(line + PhaseSplit.Lanes);
            Avx512F.PermuteVar16x32x2(zeroTwoHigh, low, oneThreeHigh).Store(line + 2 * PhaseSplit.Lanes);
            Avx512F.PermuteVar16x32x2(zeroTwoHigh, high, oneThreeHigh).Store(line + 3 * PhaseSplit.Lanes);
        }

        /// <summary>
        /// The AVX2 inverse of <see cref="SplitRow256"/>: 8 tiles' output columns 0..3 (one vector each) become 32
        /// consecutive output columns. Columns 0 with 1 and 2 with 3 interleave into pairs, the pairs into each tile's
        /// 4 columns (tiles t and t + 4 in the two 128-bit halves), and the halves are put in tile order.
        /// </summary>
        private static void InterleaveRow256(Vector256<float>* columns, float* line)
        {
            const int Lanes = 8;
            var zeroOneLow = Avx.UnpackLow(columns[0], columns[1]).AsDouble();   // tiles 0, 1 | 4, 5
            var twoThreeLow = Avx.UnpackLow(columns[2], columns[3]).AsDouble();
            var zeroOneHigh = Avx.UnpackHigh(columns[0], columns[1]).AsDouble(); // tiles 2, 3 | 6, 7
            var twoThreeHigh = Avx.UnpackHigh(columns[2], columns[3]).AsDouble();
            var tile04 = Avx.UnpackLow(zeroOneLow, twoThreeLow);
            var tile15 = Avx.UnpackHigh(zeroOneLow, twoThreeLow);
            var tile26 = Avx.UnpackLow(zeroOneHigh, twoThreeHigh);
            var tile37 = Avx.UnpackHigh(zeroOneHigh, twoThreeHigh);
            Avx.Permute2x128(tile04, tile15, LowHalves).AsSingle().Store(line);
            Avx.Permute2x128(tile26, tile37, LowHalves).AsSingle().Store(line + Lanes);
            Avx.Permute2x128(tile04, tile15, HighHalves).AsSingle().Store(line + 2 * Lanes);
            Avx.Permute2x128(tile26, tile37, HighHalves).AsSingle().Store(line + 3 * Lanes);
        }

        /// <summary>The six rows of B^T applied to d0..d5.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void InputPoints(TVec d0, TVec d1, TVec d2, TVec d3, TVec d4, TVec d5, TVec* o, int step)
        {
            TVec four = TOps.Broadcast(4f), five = TOps.Broadcast(5f), two = TOps.Broadcast(2f);
            TVec d4m2 = TOps.Subtract(d4, d2);
            TVec d3m1 = TOps.Subtract(d3, d1);
            TVec d34 = TOps.Add(d3, d4);
            TVec d4m3 = TOps.Subtract(d4, d3);
            TVec d12 = TOps.Add(d1, d2);
            TVec d1m2 = TOps.Subtract(d1, d2);
            o[0] = TOps.MulAdd(four, d0, TOps.Subtract(d4, TOps.Multiply(five, d2)));
            o[step] = TOps.Subtract(d34, TOps.Multiply(four, d12));
            o[2 * step] = TOps.MulAdd(four, d1m2, d4m3);
            o[3 * step] = TOps.MulAdd(two, d3m1, d4m2);
            o[4 * step] = TOps.Subtract(d4m2, TOps.Multiply(two, d3m1));
            o[5 * step] = TOps.MulAdd(four, d1, TOps.Subtract(d5, TOps.Multiply(five, d3)));
        }

        /// <summary>The four rows of A^T applied to m0..m5.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void OutputPoints(TVec m0, TVec m1, TVec m2, TVec m3, TVec m4, TVec m5, TVec* o, int step)
        {
            TVec a = TOps.Add(m1, m2), b = TOps.Subtract(m1, m2);
            TVec c = TOps.Add(m3, m4), d = TOps.Subtract(m3, m4);
            o[0] = TOps.Add(TOps.Add(m0, a), c);
            o[step] = TOps.MulAdd(TOps.Broadcast(2f), d, b);
            o[2 * step] = TOps.MulAdd(TOps.Broadcast(4f), c, a);
            o[3 * step] = TOps.Add(TOps.MulAdd(TOps.Broadcast(8f), d, b), m5);
        }
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;
}
