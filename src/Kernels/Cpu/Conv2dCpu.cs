using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace NativeVae.Kernels.Cpu;

// Direct 2-D convolution on NCHW fp32, no im2col. The output is cut into tiles (a band of rows by a run of
// columns, of one image); a worker packs the tile's input, for all input channels, into a zero-padded
// scratch laid out [ci][packed row][phase][padded width] (phase = column mod stride, so a stride-2 tap reads
// contiguous lanes; a fused 2x upsample is expanded while packing), then runs the register-blocked
// micro-kernel (4 output channels x up to 4 vectors of output columns) over every output-channel block.
// Padding, stride, upsampling and the row end are all absorbed by the packing: the hot loop has no branches.
// The packed tile (<= PackBudgetBytes) stays in L2 while every output-channel block streams over it.
// 1x1 convolutions take the same path: packing their tile costs less than the micro-kernel loses reading
// channel rows a whole plane apart (measured 230 -> 300 GFLOP/s at 256->128 @512x512).
// The direct 3x3 stride-1 path runs near the FMA peak; the backend sends such convs with >= 64 channels to
// Conv2dWinogradCpu (F(4x4, 3x3), 4x fewer FMAs) instead.

/// <summary>
/// A per-(image, input channel) affine, then optionally SiLU, applied to a convolution's input while it is packed:
/// GroupNorm (+ SiLU) folded into the convolution (<c>GroupNormCpu.Fold</c>), so the normalised tensor is
/// never stored. <see cref="Scale"/> and <see cref="Shift"/> are [N * Cin]; padding stays zero, as the convolution
/// pads the normalised tensor. The default value applies nothing.
/// </summary>
internal readonly unsafe struct InputAffine(float* scale, float* shift, bool silu)
{
    public readonly float* Scale = scale;
    public readonly float* Shift = shift;
    public readonly bool Silu = silu;

    public bool IsActive => Scale != null;

    /// <summary>dst[i] = f(src[i]) for channel <paramref name="index"/> = n * Cin + ci (dst may equal src).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Apply<TVec, TOps>(long index, float* src, float* dst, int count)
        where TVec : unmanaged where TOps : IVectorOps<TVec> =>
        ElementwiseCpu.MapSpan<TVec, TOps, AffineFunction>(new AffineFunction(Scale[index], Shift[index], Silu), src, dst, count);

    /// <summary>dst[i] = f(src[i]) for channel <paramref name="index"/>, or a plain copy when inactive.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Copy<TVec, TOps>(long index, float* src, float* dst, int count)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        if (IsActive) Apply<TVec, TOps>(index, src, dst, count);
        else new ReadOnlySpan<float>(src, count).CopyTo(new Span<float>(dst, count));
    }

    /// <summary>
    /// line[i] = f(row[x0 + i]) for i in [0, <paramref name="used"/>) where x0 + i lies inside [0, width), zero for
    /// every other i up to <paramref name="count"/>: one input row laid out contiguously (padding zero, as the
    /// convolution pads the normalised tensor), for the vector phase splits.
    /// </summary>
    public void CopyRow<TVec, TOps>(long index, float* row, int x0, int width, float* line, int count, int used)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        int lo = Math.Clamp(-x0, 0, used);
        int hi = Math.Clamp(width - x0, lo, used);
        new Span<float>(line, lo).Clear();
        new Span<float>(line + hi, count - hi).Clear();
        Copy<TVec, TOps>(index, row + x0 + lo, line + lo, hi - lo);
    }
}

/// <summary>
/// Convolution weights packed once for the micro-kernel: <c>[Cout / 4][Cin][K][K][4]</c>, the last
/// output-channel block zero-padded. Native 64-byte aligned memory, freed by <see cref="Dispose"/>.
/// </summary>
internal sealed unsafe class Conv2dPackedWeights : IDisposable
{
    private float* _data;

    public Conv2dPackedWeights(float* weight, int outChannels, int inChannels, int kernel)
        : this(new StoredElements(weight, StorageType.F32), outChannels, inChannels, kernel)
    {
    }

    /// <summary>Packs row-major weights of any storage type (16-bit ones widened: the packing is fp32).</summary>
    public Conv2dPackedWeights(StoredElements weight, int outChannels, int inChannels, int kernel)
    {
        OutChannels = outChannels;
        InChannels = inChannels;
        Kernel = kernel;
        int rows = MicroKernelCpu.Rows;
        int taps = kernel * kernel;
        Blocks = (outChannels + rows - 1) / rows;
        BlockFloats = (long)inChannels * taps * rows;
        long floats = Blocks * BlockFloats;
        _data = (float*)HostMemory.Allocate(Bytes);
        for (int block = 0; block < Blocks; block++)
        {
            float* dst = _data + block * BlockFloats;
            for (int ci = 0; ci < inChannels; ci++)
            for (int tap = 0; tap < taps; tap++)
            for (int r = 0; r < rows; r++)
            {
                int co = block * rows + r;
                *dst++ = co < outChannels ? weight[((long)co * inChannels + ci) * taps + tap] : 0f;
            }
        }
    }

    public int OutChannels { get; }
    public int InChannels { get; }
    public int Kernel { get; }
    public int Blocks { get; }
    public long BlockFloats { get; }
    public long Bytes => Blocks * BlockFloats * sizeof(float);

    /// <summary>Writes the weights back in their row-major <c>[Cout, Cin, K, K]</c> layout.</summary>
    public void Unpack(float* weight)
    {
        int rows = MicroKernelCpu.Rows;
        int taps = Kernel * Kernel;
        for (int co = 0; co < OutChannels; co++)
        for (int ci = 0; ci < InChannels; ci++)
        for (int tap = 0; tap < taps; tap++)
            weight[((long)co * InChannels + ci) * taps + tap] = Block(co / rows)[((long)ci * taps + tap) * rows + co % rows];
    }

    public float* Block(int block)
    {
        ObjectDisposedException.ThrowIf(_data == null, this);
        return _data + block * BlockFloats;
    }

    public void Dispose()
    {
        if (_data != null) HostMemory.Free((nint)_data, Bytes);
        _data = null;
    }
}

internal static unsafe class Conv2dCpu
{
    /// <summary>Packed input tile budget: leaves room in a 1 MiB L2 for the weights streaming past it.</summary>
    private const long PackBudgetBytes = 384 * 1024;

    /// <summary>Most output rows per tile; more rows amortise the K-1 halo rows packed with each band.</summary>
    private const int MaxBandRows = 8;

    /// <summary>Most output columns per tile, in micro-kernel column blocks.</summary>
    private const int MaxTileBlocks = 4;

    /// <summary>Tiles per worker we aim for, so that dynamic scheduling can balance uneven tiles.</summary>
    private const int TilesPerWorker = 4;

    /// <summary>Packed rows are padded to whole cache lines so that the tap-0 loads are aligned.</summary>
    private const int RowAlignFloats = 16;

    private const int PackSlot = 0;
    private const int TapSlot = 1;
    private const int StageSlot = 2;

    /// <summary>
    /// y = conv(f(x), w) (+ bias) (+ residual), f = <paramref name="affine"/> (none by default).
    /// <paramref name="x"/> [N, Cin, H, W], <paramref name="y"/> and <paramref name="residual"/> [N, Cout, Ho, Wo],
    /// <paramref name="bias"/> [Cout]; null pointers mean absent.
    /// </summary>
    public static void Run(CpuWorkers workers, SimdWidth width, in Conv2dParams p, float* x, Conv2dPackedWeights w,
        float* bias, float* residual, float* y, InputAffine affine = default) =>
        Run(workers, width, p, new StoredElements(x, StorageType.F32), w, bias,
            new StoredElements(residual, StorageType.F32), new StoredElements(y, StorageType.F32), affine);

    /// <summary>
    /// <see cref="Run(CpuWorkers, SimdWidth, in Conv2dParams, float*, Conv2dPackedWeights, float*, float*, float*, InputAffine)"/>
    /// on tensors of any storage type: 16-bit input rows are widened as they are packed, and a 16-bit output (and its
    /// residual) goes through an fp32 tile per worker, narrowed once the tile's channels are done.
    /// </summary>
    public static void Run(CpuWorkers workers, SimdWidth width, in Conv2dParams p, StoredElements x, Conv2dPackedWeights w,
        float* bias, StoredElements residual, StoredElements y, InputAffine affine = default)
    {
        var body = new RunBody { Workers = workers, P = p, X = x, W = w, Bias = bias, Residual = residual, Y = y, Affine = affine };
        SimdDispatch.Run(width, ref body);
    }

    private struct RunBody : ISimdBody
    {
        public CpuWorkers Workers;
        public Conv2dParams P;
        public StoredElements X;
        public Conv2dPackedWeights W;
        public float* Bias;
        public StoredElements Residual;
        public StoredElements Y;
        public InputAffine Affine;

        public void Invoke<TVec, TOps>() where TVec : unmanaged where TOps : IVectorOps<TVec> =>
            Run<TVec, TOps>(Workers, P, X, W, Bias, Residual, Y, Affine);
    }

    private static void Run<TVec, TOps>(CpuWorkers workers, in Conv2dParams p, StoredElements x, Conv2dPackedWeights w,
        float* bias, StoredElements residual, StoredElements y, InputAffine affine)
        where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        if (p.Batch == 0 || p.OutChannels == 0 || p.OutHeight == 0 || p.OutWidth == 0) return;
        var job = new ConvJob<TVec, TOps>
        {
            P = p, X = x, W = w.Block(0), WBlockFloats = w.BlockFloats, Bias = bias, Residual = residual, Y = y,
            Affine = affine,
        };
        job.Plan(workers.Count);
        job.Packs = workers.ScratchTable(PackSlot, job.PackFloats);
        if (job.Staged)
            job.Stages = workers.ScratchTable(StageSlot, 2 * job.StageFloats);
        job.Taps = (int*)workers.SharedScratch(TapSlot, job.P.Kernel * job.P.Kernel);
        job.FillTapOffsets();
        workers.Run(job.ItemCount, ref job);
    }

    private struct ConvJob<TVec, TOps> : IWorkItem where TVec : unmanaged where TOps : IVectorOps<TVec>
    {
        public Conv2dParams P;
        public StoredElements X;
        public float* W;
        public long WBlockFloats;
        public float* Bias;
        public StoredElements Residual;
        public StoredElements Y;
        public float** Packs;
        /// <summary>Per worker, when <see cref="Staged"/>: the fp32 output tile, then the residual tile.</summary>
        public float** Stages;
        public int* Taps;
        public InputAffine Affine;

        // Plan: tiles of BandRows x TileCols outputs.
        public int BandRows;
        public int TileCols;
        public int Bands;
        public int ColTiles;
        public int PackedWidth;
        public int PackedRows;
        public long PackFloats;
        public int ItemCount;

        /// <summary>The output is 16-bit: tiles are computed in fp32 scratch and narrowed into it.</summary>
        public readonly bool Staged => !Y.IsF32;

        /// <summary>Floats of one staged tile: a micro-kernel row block over the tile's rows and columns.</summary>
        public readonly long StageFloats => (long)MicroKernelCpu.Rows * BandRows * TileCols;

        private int VirtualHeight => P.Upsample2x != 0 ? 2 * P.InHeight : P.InHeight;
        private int VirtualWidth => P.Upsample2x != 0 ? 2 * P.InWidth : P.InWidth;

        public void Plan(int workers)
        {
            int lanes = TOps.Lanes;
            int block = MicroKernelCpu.Vectors<TVec, TOps>() * lanes;
            int target = workers * TilesPerWorker;
            long channelBytes = Math.Max(1, P.InChannels) * (long)sizeof(float);
            int s = P.Stride;
            TileCols = Math.Min(P.OutWidth, MaxTileBlocks * block);
            BandRows = 1;
            while (true)
            {
                PackedWidth = PackedWidthFor(TileCols);
                long rowBytes = channelBytes * s * PackedWidth;
                BandRows = MaxBandRows;
                while (BandRows > 1 && rowBytes * ((BandRows - 1) * s + P.Kernel) > PackBudgetBytes) BandRows--;
                if (BandRows > 1 || TileCols <= block) break;
                TileCols = Math.Max(block, TileCols / 2 / block * block);
            }
            BandRows = Math.Min(BandRows, P.OutHeight);
            ColTiles = (P.OutWidth + TileCols - 1) / TileCols;
            while (BandRows > 1 && (long)P.Batch * ColTiles * ((P.OutHeight + BandRows - 1) / BandRows) < target) BandRows--;
            Bands = (P.OutHeight + BandRows - 1) / BandRows;
            PackedRows = (BandRows - 1) * s + P.Kernel;
            // + one contiguous input row, for the vector stride-2 split, + the widened source segment of a 16-bit
            // input row (one more element: an upsampled segment's last column pair).
            PackFloats = (long)Math.Max(1, P.InChannels) * PackedRows * s * PackedWidth + s * PackedWidth
                + (X.IsF32 ? 0 : s * PackedWidth + 1);
            ItemCount = checked(P.Batch * Bands * ColTiles);
        }

        private int PackedWidthFor(int cols) =>
            RoundUp(RoundUp(cols, TOps.Lanes) + (P.Kernel - 1) / P.Stride, RowAlignFloats);

        /// <summary>Offset of tap (ky, kx) in the packed tile, relative to the output pixel's tap (0, 0).</summary>
        public void FillTapOffsets()
        {
            int s = P.Stride;
            for (int ky = 0; ky < P.Kernel; ky++)
            for (int kx = 0; kx < P.Kernel; kx++)
                Taps[ky * P.Kernel + kx] = (ky * s + kx % s) * PackedWidth + kx / s;
        }

        public void Execute(int item, int worker)
        {
            ExecuteTile(item, Packs[worker], Staged ? Stages[worker] : null);
        }

        private void ExecuteTile(int item, float* pack, float* stage)
        {
            int n = item / (Bands * ColTiles);
            int rest = item % (Bands * ColTiles);
            int y0 = rest / ColTiles * BandRows;
            int x0 = rest % ColTiles * TileCols;
            int rows = Math.Min(BandRows, P.OutHeight - y0);
            int cols = Math.Min(TileCols, P.OutWidth - x0);
            int packedRows = (rows - 1) * P.Stride + P.Kernel;
            Pack(pack, n, y0, x0, packedRows);

            var t = NewTask();
            t.InputStride = (long)packedRows * P.Stride * PackedWidth;
            long planeOut = (long)P.OutHeight * P.OutWidth;
            t.OutputRowStride = planeOut;
            t.ResidualRowStride = planeOut;
            long outBase = (long)n * P.OutChannels * planeOut + (long)y0 * P.OutWidth + x0;
            long inputRowStep = (long)P.Stride * P.Stride * PackedWidth;
            if (stage != null)
            {
                RunStagedBlocks(ref t, pack, stage, outBase, cols, rows, inputRowStep);
                return;
            }
            RunBlocks(ref t, pack, outBase, cols, rows, inputRowStep, outRowStep: P.OutWidth);
            if (t.Streaming) CacheHints.FenceStreamingStores();
        }

        /// <summary>
        /// <see cref="RunBlocks"/> for a 16-bit output: each output-channel block is computed into the fp32 tile
        /// <paramref name="stage"/> [Rows][rows][TileCols] (its residual widened beside it), then narrowed into Y.
        /// </summary>
        private void RunStagedBlocks(ref MicroTask t, float* input, float* stage, long outBase, int cols, int rows, long inputRowStep)
        {
            int lanes = TOps.Lanes;
            int block = MicroKernelCpu.Vectors<TVec, TOps>() * lanes;
            int rowsPerBlock = MicroKernelCpu.Rows;
            long planeOut = (long)P.OutHeight * P.OutWidth;
            long stagePlane = (long)rows * TileCols;
            float* residualStage = stage + StageFloats;
            t.Streaming = false;
            t.OutputRowStride = stagePlane;
            t.ResidualRowStride = stagePlane;
            for (int cb = 0, co0 = 0; co0 < P.OutChannels; cb++, co0 += rowsPerBlock)
            {
                t.Weights = W + cb * WBlockFloats;
                t.ValidRows = Math.Min(rowsPerBlock, P.OutChannels - co0);
                t.Bias = Bias == null ? null : Bias + co0;
                if (!Residual.IsNull)
                    for (int k = 0; k < t.ValidRows; k++)
                    for (int r = 0; r < rows; r++)
                        Residual.Read(outBase + (co0 + k) * planeOut + (long)r * P.OutWidth, residualStage + k * stagePlane + r * TileCols, cols);
                for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c += block)
                {
                    int width = Math.Min(block, cols - c);
                    int vectors = (width + lanes - 1) / lanes;
                    long o = (long)r * TileCols + c;
                    t.Input = input + r * inputRowStep + c;
                    t.Output = stage + o;
                    t.Residual = Residual.IsNull ? null : residualStage + o;
                    t.LastVectorLanes = width - (vectors - 1) * lanes;
                    MicroKernelCpu.Run<TVec, TOps>(t, vectors);
                }
                for (int k = 0; k < t.ValidRows; k++)
                for (int r = 0; r < rows; r++)
                    Y.Write(outBase + (co0 + k) * planeOut + (long)r * P.OutWidth, stage + k * stagePlane + r * TileCols, cols);
            }
        }

        private MicroTask NewTask() => new()
        {
            TapOffsets = Taps,
            TapCount = P.Kernel * P.Kernel,
            ReduceCount = P.InChannels,
            Epilogue = MicroEpilogue.Store,
            Streaming = CacheHints.StreamsOutput((long)P.Batch * P.OutChannels * P.OutHeight * P.OutWidth),
        };

        /// <summary>Every output-channel block over <paramref name="rows"/> rows of <paramref name="cols"/> columns.</summary>
        private void RunBlocks(ref MicroTask t, float* input, long outBase, int cols, int rows, long inputRowStep, long outRowStep)
        {
            int lanes = TOps.Lanes;
            int block = MicroKernelCpu.Vectors<TVec, TOps>() * lanes;
            int rowsPerBlock = MicroKernelCpu.Rows;
            long planeOut = t.OutputRowStride;
            for (int cb = 0, co0 = 0; co0 < P.OutChannels; cb++, co0 += rowsPerBlock)
            {
                t.Weights = W + cb * WBlockFloats;
                t.ValidRows = Math.Min(rowsPerBlock, P.OutChannels - co0);
                t.Bias = Bias == null ? null : Bias + co0;
                for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c += block)
                {
                    int width = Math.Min(block, cols - c);
                    int vectors = (width + lanes - 1) / lanes;
                    long o = outBase + co0 * planeOut + r * outRowStep + c;
                    t.Input = input + r * inputRowStep + c;
                    t.Output = Y.F32 + o;
                    t.Residual = Residual.IsNull ? null : Residual.F32 + o;
                    t.LastVectorLanes = width - (vectors - 1) * lanes;
                    MicroKernelCpu.Run<TVec, TOps>(t, vectors);
                }
            }
        }

        /// <summary>
        /// Packs input rows for output rows y0.. and columns x0.. of image n: [ci][row][phase][PackedWidth],
        /// zeros where the (virtual, upsampled) input is padding.
        /// </summary>
        private void Pack(float* pack, int n, int y0, int x0, int packedRows)
        {
            int s = P.Stride;
            int pw = PackedWidth;
            int hv = VirtualHeight, wv = VirtualWidth;
            bool up = P.Upsample2x != 0;
            long plane = (long)P.InHeight * P.InWidth;
            float* dst = pack;
            float* line = pack + (long)Math.Max(1, P.InChannels) * packedRows * s * pw; // past every packed row
            float* widened = line + s * pw;
            // The source columns a packed row reads, [sourceLo, sourceHi): widened from a 16-bit input.
            int virtualLo = Math.Max(0, x0 * s - P.PadLeft), virtualHi = Math.Min(wv, x0 * s - P.PadLeft + s * pw);
            int sourceLo = up ? virtualLo >> 1 : virtualLo;
            int sourceHi = Math.Max(sourceLo, up ? (virtualHi + 1) >> 1 : virtualHi);
            bool split2 = s == 2 && !up && typeof(TVec) == typeof(Vector512<float>) && Avx512F.IsSupported;
            const int pd = CacheHints.PrefetchChannels;
            for (int ci = 0; ci < P.InChannels; ci++)
            {
                long channel = (long)n * P.InChannels + ci;
                if (X.IsF32 && ci + pd < P.InChannels)
                    CacheHints.PrefetchRows(X.F32 + (channel + pd) * plane, P.InHeight, P.InWidth, y0 * s - P.PadTop, y0 * s - P.PadTop + packedRows,
                        x0 * s - P.PadLeft, x0 * s - P.PadLeft + s * pw, up);
                for (int pr = 0; pr < packedRows; pr++)
                {
                    int yv = y0 * s - P.PadTop + pr;
                    if ((uint)yv >= (uint)hv)
                    {
                        new Span<float>(dst, s * pw).Clear();
                        dst += s * pw;
                        continue;
                    }
                    float* row = X.RowWindow(channel * plane + (long)(up ? yv >> 1 : yv) * P.InWidth, sourceLo, sourceHi, widened);
                    if (split2)
                    {
                        SplitRow2(row, line, dst, channel, x0 * s - P.PadLeft, wv);
                        dst += s * pw;
                        continue;
                    }
                    for (int phase = 0; phase < s; phase++, dst += pw)
                    {
                        int xv0 = x0 * s - P.PadLeft + phase;
                        // Packed columns j in [lo, hi) read virtual input columns xv0 + j * s inside [0, wv).
                        int lo = xv0 >= 0 ? 0 : Math.Min(pw, (-xv0 + s - 1) / s);
                        int hi = Math.Clamp(wv - xv0 <= 0 ? 0 : (wv - xv0 + s - 1) / s, lo, pw);
                        new Span<float>(dst, lo).Clear();
                        new Span<float>(dst + hi, pw - hi).Clear();
                        if (s == 1 && !up)
                        {
                            Affine.Copy<TVec, TOps>(channel, row + xv0 + lo, dst + lo, hi - lo);
                            continue;
                        }
                        if (up)
                            for (int j = lo; j < hi; j++) dst[j] = row[(xv0 + j * s) >> 1];
                        else if (s == 2)
                            for (int j = lo; j < hi; j++) dst[j] = row[xv0 + 2 * j]; // the Downsample2D case, constant stride
                        else
                            for (int j = lo; j < hi; j++) dst[j] = row[xv0 + j * s];
                        if (Affine.IsActive) Affine.Apply<TVec, TOps>(channel, dst + lo, dst + lo, hi - lo);
                    }
                }
            }
        }

        /// <summary>
        /// The AVX-512 stride-2 packing of one (not upsampled) row: columns x0 .. x0 + 2 PackedWidth (zero outside
        /// [0, width)) copied contiguously into <paramref name="line"/>, the input affine applied on the way, then
        /// split into even and odd columns (the two phases) with two-source permutes.
        /// </summary>
        private void SplitRow2(float* row, float* line, float* dst, long channel, int x0, int width)
        {
            int count = 2 * PackedWidth; // whole vectors: PackedWidth is a multiple of RowAlignFloats
            Affine.CopyRow<TVec, TOps>(channel, row, x0, width, line, count, count);
            for (int g = 0, j = 0; g < count; g += 2 * PhaseSplit.Lanes, j += PhaseSplit.Lanes)
            {
                var a = Vector512.Load(line + g);
                var b = Vector512.Load(line + g + PhaseSplit.Lanes);
                Avx512F.PermuteVar16x32x2(a, PhaseSplit.Even, b).Store(dst + j);
                Avx512F.PermuteVar16x32x2(a, PhaseSplit.Odd, b).Store(dst + PackedWidth + j);
            }
        }
    }

    private static int RoundUp(int value, int multiple) => (value + multiple - 1) / multiple * multiple;

}
