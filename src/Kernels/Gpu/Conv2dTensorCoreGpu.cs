using System.Runtime.CompilerServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;

namespace NativeVae.Kernels.Gpu;

// Conv2d as an implicit GEMM on tensor cores, 16-bit storage (bf16 or fp16) and fp32 accumulation.
// Layouts: input NHWC [N, H, W, Cin], weight packed K-major [WeightRows, K * K, Cin], output and residual NHWC
// [N, Ho, Wo, Cout], bias fp32 with one entry per weight row. Channel counts are storage counts, padded to
// ChannelAlignment with zeros (the weight rows from WeightRows up read as zeros, their bias too), so that every padded
// output channel is an exact zero the next conv can read. With OutputF32 the output is fp32 NCHW [N, WeightRows, Ho,
// Wo] instead, padding dropped: the decoder's image stays unrounded.
// GEMM: M = N * Ho * Wo output pixels, columns = Cout, depth = K * K * Cin ordered (ky, kx, ci), so a run of 16
// depth entries is 16 consecutive channels of one input pixel. A nearest 2x upsample of the input is fused as in
// Conv2dGpu; padding is PadTop/PadLeft, the rest implied by the output size.
// An upsampling conv (SubPixel) runs as 4 phases, one per output parity (py, px): phase pixels (y, x) write output
// (2y + py, 2x + px) from a 2x2 conv of the input with taps summed per phase (NhwcPacking.PackSubPixelWeights), so
// it does 4 of the 9 taps' multiplies for the same result; grid z is the phase.
// Tiles of M never straddle two images (grid x = batch * tiles per image), so that with HasMoments the epilogue can
// write each tile's per-channel moments (count, mean, M2) of the stored output: GroupNorm's statistics then come
// from merging them (GroupNormGpu.MergeTileMoments), with no pass over the activation.

internal static class Conv2dTensorCoreGpu
{
    /// <summary>Channel counts (in and out) are multiples of this: one MMA depth step of one pixel.</summary>
    public const int ChannelAlignment = 16;

    public const int BlockM = 128;
    public const int BlockN = 128;
    public const int BlockK = 32;
    public const int GroupSize = 256;

    private const int WarpSize = 32;
    private const int WarpsAlongN = 4;
    private const int WarpRows = 64;
    private const int WarpColumns = 32;
    private const int MmaRows = 16;
    private const int MmaColumns = 8;
    private const int LanesPerGroup = 4;
    /// <summary>A fragment's second row is 8 rows below its first (g and g + 8).</summary>
    private const int LowerRows = MmaRows / 2;

    /// <summary>Two 16-bit elements per word.</summary>
    private const int ElementsPerWord = 2;
    private const int WordsPerStep = BlockK / ElementsPerWord;
    /// <summary>Words between a tile row and the next: 4 words of padding put the 8 rows a fragment load touches on distinct banks.</summary>
    private const int Pitch = WordsPerStep + 4;
    private const int StageWords = BlockM * Pitch;
    /// <summary>Each thread loads half a row of each tile per step: 8 words, 16 consecutive depth entries.</summary>
    private const int LoadWords = WordsPerStep / 2;
    private const int LoadDepth = LoadWords * ElementsPerWord;
    /// <summary>Word offset of the second 16-deep half of a fragment (columns 2t + 8, 2t + 9).</summary>
    private const int HighHalfWords = 4;

    /// <summary>
    /// bf16 storage. Launch: grid (batch * TilesPerImage / phases, ceil(Cout / 128), phases), group 256. With HasMoments,
    /// <c>moments</c> is [batch, TilesPerImage, Cout, 3] = (count, mean, M2) of each tile's stored output.
    /// </summary>
    [GpuKernel(ExplicitlyGrouped = true, TensorCores = true)]
    internal static void Bf16(Conv2dParams p, ArrayView<uint> input, ArrayView<uint> weight, ArrayView<float> bias,
        ArrayView<uint> residual, ArrayView<uint> output, ArrayView<float> moments) =>
        Run(default(Bf16Format), p, input, weight, bias, residual, output, moments);

    /// <summary>fp16 storage. Launch as <see cref="Bf16"/>.</summary>
    [GpuKernel(ExplicitlyGrouped = true, TensorCores = true)]
    internal static void F16(Conv2dParams p, ArrayView<uint> input, ArrayView<uint> weight, ArrayView<float> bias,
        ArrayView<uint> residual, ArrayView<uint> output, ArrayView<float> moments) =>
        Run(default(F16Format), p, input, weight, bias, residual, output, moments);

    /// <summary>
    /// A 128 x 128 output tile per group of 8 warps, each warp 64 x 32 (4 x 4 MMA tiles). Per depth step the next
    /// step's tiles are loaded into registers while the tensor cores work on this one from shared memory, then
    /// stored into the other half of a double buffer: one barrier per step.
    /// </summary>
    private static void Run<TFormat>(TFormat format, Conv2dParams p, ArrayView<uint> input, ArrayView<uint> weight,
        ArrayView<float> bias, ArrayView<uint> residual, ArrayView<uint> output, ArrayView<float> moments)
        where TFormat : struct, IHalfFormat
    {
        var aTiles = SharedMemory.Allocate<uint>(2 * StageWords);
        var bTiles = SharedMemory.Allocate<uint>(2 * StageWords);

        int thread = Group.IdxX;
        int warp = thread / WarpSize;
        int lane = thread % WarpSize;
        int phase = Grid.IdxZ;
        var gemm = Conv2dTensorCoreGeometry.GemmConv(p, phase);
        int pixels = gemm.OutHeight * gemm.OutWidth;
        int tiles = DeviceMath.CeilDiv(pixels, BlockM);
        int batch = Grid.IdxX / tiles;
        int tile = Grid.IdxX - batch * tiles;
        int tileStart = tile * BlockM;
        int rowsInTile = Math.Min(BlockM, pixels - tileStart);
        int n0 = Grid.IdxY * BlockN;
        int depth = gemm.Kernel * gemm.Kernel * p.InChannels;
        int steps = DeviceMath.CeilDiv(depth, BlockK);
        int weightRows = p.WeightRows > 0 ? p.WeightRows : p.OutChannels;
        int phaseWords = weightRows * depth / ElementsPerWord;
        var phaseWeight = weight.SubView(phase * phaseWords, phaseWords);

        // The row (output pixel) and column (output channel) this thread loads are the same every step.
        int loadRow = thread / 2;
        int loadOffset = thread % 2 * LoadDepth;
        var pixel = new PixelWindow(gemm, batch, tileStart + loadRow, loadRow < rowsInTile);
        int column = n0 + loadRow;
        bool columnValid = column < weightRows;

        var nextA = LoadInput(gemm, input, pixel, loadOffset, depth);
        var nextB = LoadWeight(phaseWeight, column, columnValid, loadOffset, depth);
        nextA.Store(aTiles, loadRow * Pitch + loadOffset / ElementsPerWord);
        nextB.Store(bTiles, loadRow * Pitch + loadOffset / ElementsPerWord);
        Group.Barrier();

        var acc = default(WarpTile);
        int warpRow = warp / WarpsAlongN * WarpRows;
        int warpColumn = warp % WarpsAlongN * WarpColumns;
        int fragmentRow = lane / LanesPerGroup;
        int fragmentWord = lane % LanesPerGroup;
        // A warp whose columns are all padding (a 64-channel conv leaves half of a 128-wide tile) or whose rows are
        // all past the tile's pixels stores nothing: it skips its products (uniform per warp, as mma.sync needs).
        bool warpComputes = n0 + warpColumn < p.OutChannels && warpRow < rowsInTile;
        for (int step = 0; step < steps; step++)
        {
            int stage = step % 2 * StageWords;
            bool more = step + 1 < steps;
            if (more)
            {
                int k = (step + 1) * BlockK + loadOffset;
                nextA = LoadInput(gemm, input, pixel, k, depth);
                nextB = LoadWeight(phaseWeight, column, columnValid, k, depth);
            }

            int aWarp = stage + warpRow * Pitch;
            int bWarp = stage + warpColumn * Pitch;
            if (warpComputes)
            {
                acc.Accumulate(format, aTiles, bTiles, aWarp, bWarp);
                acc.Accumulate(format, aTiles, bTiles, aWarp + WordsPerStep / 2, bWarp + WordsPerStep / 2);
            }

            if (more)
            {
                int next = (step + 1) % 2 * StageWords + loadRow * Pitch + loadOffset / ElementsPerWord;
                nextA.Store(aTiles, next);
                nextB.Store(bTiles, next);
            }
            Group.Barrier();
        }

        int rowBase = warpRow + fragmentRow;
        int columnBase = n0 + warpColumn + fragmentWord * 2;
        var epilogue = new Epilogue(p, new OutputRows(p, gemm, phase, batch, tileStart), batch, rowsInTile, weightRows,
            bias, residual, output);
        var n0Moments = epilogue.Store(format, acc.M0.N0, acc.M1.N0, acc.M2.N0, acc.M3.N0, rowBase, columnBase);
        var n1Moments = epilogue.Store(format, acc.M0.N1, acc.M1.N1, acc.M2.N1, acc.M3.N1, rowBase, columnBase + MmaColumns);
        var n2Moments = epilogue.Store(format, acc.M0.N2, acc.M1.N2, acc.M2.N2, acc.M3.N2, rowBase, columnBase + 2 * MmaColumns);
        var n3Moments = epilogue.Store(format, acc.M0.N3, acc.M1.N3, acc.M2.N3, acc.M3.N3, rowBase, columnBase + 3 * MmaColumns);
        if (p.HasMoments == 0) return;

        // Lanes with the same t hold the same columns: merge over g (lane bits 2..4), then over the warps along M
        // through shared memory (free again after the main loop's last barrier).
        n0Moments = MergeOverRows(n0Moments);
        n1Moments = MergeOverRows(n1Moments);
        n2Moments = MergeOverRows(n2Moments);
        n3Moments = MergeOverRows(n3Moments);
        var scratch = aTiles.Cast<DeviceMoments>();
        int localColumn = warpColumn + fragmentWord * 2;
        bool writer = fragmentRow == 0;
        bool upperWarp = warpRow != 0;
        if (writer && upperWarp)
        {
            n0Moments.Put(scratch, localColumn);
            n1Moments.Put(scratch, localColumn + MmaColumns);
            n2Moments.Put(scratch, localColumn + 2 * MmaColumns);
            n3Moments.Put(scratch, localColumn + 3 * MmaColumns);
        }
        Group.Barrier();
        if (!writer || upperWarp) return;
        int tileBase = (batch * Conv2dTensorCoreGeometry.TilesPerImage(p) + phase * tiles + tile) * p.OutChannels;
        WriteMoments(p, moments, tileBase, columnBase, n0Moments.MergeWith(scratch, localColumn));
        WriteMoments(p, moments, tileBase, columnBase + MmaColumns, n1Moments.MergeWith(scratch, localColumn + MmaColumns));
        WriteMoments(p, moments, tileBase, columnBase + 2 * MmaColumns, n2Moments.MergeWith(scratch, localColumn + 2 * MmaColumns));
        WriteMoments(p, moments, tileBase, columnBase + 3 * MmaColumns, n3Moments.MergeWith(scratch, localColumn + 3 * MmaColumns));
    }

    /// <summary>Where a tile's rows go in the output: pixel (y, x) of the GEMM's grid, or (2y + py, 2x + px) for a phase.</summary>
    private readonly struct OutputRows
    {
        private readonly int _imageStart;
        private readonly int _tileStart;
        private readonly int _gridWidth;
        private readonly int _outWidth;
        private readonly int _phaseY;
        private readonly int _phaseX;
        private readonly bool _subPixel;

        public OutputRows(Conv2dParams p, Conv2dParams gemm, int phase, int batch, int tileStart)
        {
            _imageStart = batch * p.OutHeight * p.OutWidth;
            _tileStart = tileStart;
            _gridWidth = gemm.OutWidth;
            _outWidth = p.OutWidth;
            _phaseY = phase / 2;
            _phaseX = phase % 2;
            _subPixel = p.SubPixel != 0;
        }

        /// <summary>The output pixel (row of the NHWC output) of tile-local row <paramref name="row"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Of(int row)
        {
            int pixel = _tileStart + row;
            if (!_subPixel) return _imageStart + pixel;
            int y = pixel / _gridWidth;
            int x = pixel - y * _gridWidth;
            return _imageStart + (2 * y + _phaseY) * _outWidth + 2 * x + _phaseX;
        }
    }

    /// <summary>Values per (tile, channel) in the moments output: count, mean, M2.</summary>
    public const int MomentsPerChannel = 3;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ColumnPairMoments MergeOverRows(ColumnPairMoments m)
    {
        for (int lanes = LanesPerGroup; lanes < WarpSize; lanes *= 2)
        {
            var other = Warp.ShuffleXor(m, lanes);
            m.Even = m.Even.Merge(other.Even);
            m.Odd = m.Odd.Merge(other.Odd);
        }
        return m;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteMoments(Conv2dParams p, ArrayView<float> moments, int tileBase, int column, ColumnPairMoments m)
    {
        if (column >= p.OutChannels) return;
        int at = (tileBase + column) * MomentsPerChannel;
        moments[at] = m.Even.Count;
        moments[at + 1] = m.Even.Mean;
        moments[at + 2] = m.Even.M2;
        moments[at + MomentsPerChannel] = m.Odd.Count;
        moments[at + MomentsPerChannel + 1] = m.Odd.Mean;
        moments[at + MomentsPerChannel + 2] = m.Odd.M2;
    }

    /// <summary>The moments of a lane's two columns (2t and 2t + 1 of an MMA tile) over its rows.</summary>
    private struct ColumnPairMoments
    {
        public DeviceMoments Even;
        public DeviceMoments Odd;

        /// <summary>Into the scratch at a tile-local column (the pair occupies column and column + 1).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Put(ArrayView<DeviceMoments> scratch, int column)
        {
            scratch[column] = Even;
            scratch[column + 1] = Odd;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly ColumnPairMoments MergeWith(ArrayView<DeviceMoments> scratch, int column) => new()
        {
            Even = Even.Merge(scratch[column]),
            Odd = Odd.Merge(scratch[column + 1]),
        };
    }

    /// <summary>16 depth entries of this thread's im2col row from depth <paramref name="k"/>: 16 channels of one input pixel, or zeros.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Words8 LoadInput(Conv2dParams p, ArrayView<uint> input, PixelWindow pixel, int k, int depth)
    {
        var words = default(Words8);
        if (!pixel.Valid || k >= depth) return words;
        int tap = k / p.InChannels;
        int channel = k - tap * p.InChannels;
        int ky = tap / p.Kernel;
        int iy = pixel.Y0 + ky;
        int ix = pixel.X0 + tap - ky * p.Kernel;
        int up = p.Upsample2x;
        if ((uint)iy >= (uint)(p.InHeight << up) || (uint)ix >= (uint)(p.InWidth << up)) return words;
        int element = ((pixel.Batch * p.InHeight + (iy >> up)) * p.InWidth + (ix >> up)) * p.InChannels + channel;
        words.Load(input, element / ElementsPerWord);
        return words;
    }

    /// <summary>16 depth entries of output channel <paramref name="column"/>'s packed weights from depth <paramref name="k"/>, or zeros.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Words8 LoadWeight(ArrayView<uint> weight, int column, bool valid, int k, int depth)
    {
        var words = default(Words8);
        if (valid && k < depth) words.Load(weight, (column * depth + k) / ElementsPerWord);
        return words;
    }

    /// <summary>Where an output pixel's receptive field starts in the (virtual, maybe upsampled) input.</summary>
    private readonly struct PixelWindow
    {
        public readonly bool Valid;
        public readonly int Batch;
        public readonly int Y0;
        public readonly int X0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public PixelWindow(Conv2dParams p, int batch, int pixelInImage, bool valid)
        {
            Valid = valid;
            Batch = batch;
            int pixel = valid ? pixelInImage : 0;
            int oy = pixel / p.OutWidth;
            Y0 = oy * p.Stride - p.PadTop;
            X0 = (pixel - oy * p.OutWidth) * p.Stride - p.PadLeft;
        }
    }

    /// <summary>Eight words in registers: one thread's share of a tile row per step.</summary>
    private struct Words8
    {
        public uint W0, W1, W2, W3, W4, W5, W6, W7;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Load(ArrayView<uint> source, int at)
        {
            W0 = source[at];
            W1 = source[at + 1];
            W2 = source[at + 2];
            W3 = source[at + 3];
            W4 = source[at + 4];
            W5 = source[at + 5];
            W6 = source[at + 6];
            W7 = source[at + 7];
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(ArrayView<uint> target, int at)
        {
            target[at] = W0;
            target[at + 1] = W1;
            target[at + 2] = W2;
            target[at + 3] = W3;
            target[at + 4] = W4;
            target[at + 5] = W5;
            target[at + 6] = W6;
            target[at + 7] = W7;
        }
    }

    /// <summary>A lane's accumulators of one 16-row strip of its warp's tile: four 16 x 8 MMA tiles side by side.</summary>
    private struct TileRow
    {
        public MmaAccumulator N0, N1, N2, N3;
    }

    /// <summary>A lane's 64 accumulators of its warp's 64 x 32 tile, named rather than indexed so that they stay in registers.</summary>
    private struct WarpTile
    {
        public TileRow M0, M1, M2, M3;

        /// <summary>
        /// One 16-deep MMA step over the warp's tile, with the fragments read from shared memory: the warp's A rows
        /// start at word <paramref name="aWarp"/>, its B columns at <paramref name="bWarp"/>. Without tensor cores
        /// each product is emulated from the fragments the other lanes would load (<see cref="SharedFragments"/>).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Accumulate<TFormat>(TFormat format, ArrayView<uint> a, ArrayView<uint> b, int aWarp, int bWarp)
            where TFormat : struct, IHalfFormat
        {
            const int NextTile = MmaColumns * Pitch;
            const int NextStrip = MmaRows * Pitch;
            if (!CudaAsm.IsSupported)
            {
                // One emulated product in a loop over the 16 tiles, not 16 inlined copies: the CPU accelerator
                // compiles the kernel in half the time.
                for (int tile = 0; tile < TilesPerWarp; tile++)
                {
                    var c = Get(tile);
                    var fragments = new SharedFragments(a, b, aWarp + tile / TilesPerRow * NextStrip, bWarp + tile % TilesPerRow * NextTile);
                    WarpMma.Emulate(ref c, fragments, format);
                    Set(tile, c);
                }
                return;
            }
            int lane = LaneOffset(Warp.LaneIdx);
            int aBase = aWarp + lane, bBase = bWarp + lane;
            var b0 = FragmentB(b, bBase);
            var b1 = FragmentB(b, bBase + NextTile);
            var b2 = FragmentB(b, bBase + 2 * NextTile);
            var b3 = FragmentB(b, bBase + 3 * NextTile);
            Row(format, ref M0, FragmentA(a, aBase), b0, b1, b2, b3);
            Row(format, ref M1, FragmentA(a, aBase + NextStrip), b0, b1, b2, b3);
            Row(format, ref M2, FragmentA(a, aBase + 2 * NextStrip), b0, b1, b2, b3);
            Row(format, ref M3, FragmentA(a, aBase + 3 * NextStrip), b0, b1, b2, b3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Row<TFormat>(TFormat format, ref TileRow row, in MmaFragmentA a,
            in MmaFragmentB b0, in MmaFragmentB b1, in MmaFragmentB b2, in MmaFragmentB b3)
            where TFormat : struct, IHalfFormat
        {
            format.Mma(ref row.N0, a, b0);
            format.Mma(ref row.N1, a, b1);
            format.Mma(ref row.N2, a, b2);
            format.Mma(ref row.N3, a, b3);
        }

        private const int TilesPerRow = 4;
        private const int TilesPerWarp = 16;

        /// <summary>Accumulator tile <paramref name="tile"/> (row-major over the warp's 4 x 4 MMA tiles), for the emulator's loop.</summary>
        private readonly MmaAccumulator Get(int tile) => tile switch
        {
            0 => M0.N0, 1 => M0.N1, 2 => M0.N2, 3 => M0.N3,
            4 => M1.N0, 5 => M1.N1, 6 => M1.N2, 7 => M1.N3,
            8 => M2.N0, 9 => M2.N1, 10 => M2.N2, 11 => M2.N3,
            12 => M3.N0, 13 => M3.N1, 14 => M3.N2, _ => M3.N3,
        };

        private void Set(int tile, MmaAccumulator c)
        {
            switch (tile)
            {
                case 0: M0.N0 = c; break;
                case 1: M0.N1 = c; break;
                case 2: M0.N2 = c; break;
                case 3: M0.N3 = c; break;
                case 4: M1.N0 = c; break;
                case 5: M1.N1 = c; break;
                case 6: M1.N2 = c; break;
                case 7: M1.N3 = c; break;
                case 8: M2.N0 = c; break;
                case 9: M2.N1 = c; break;
                case 10: M2.N2 = c; break;
                case 11: M2.N3 = c; break;
                case 12: M3.N0 = c; break;
                case 13: M3.N1 = c; break;
                case 14: M3.N2 = c; break;
                default: M3.N3 = c; break;
            }
        }

        /// <summary>Word offset of a lane's fragments from its warp's tile start: row g = lane / 4, word t = lane % 4.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static int LaneOffset(int lane) => lane / LanesPerGroup * Pitch + lane % LanesPerGroup;

        /// <summary>Any lane's fragments of one MMA tile, loaded as that lane loads them on a GPU.</summary>
        private readonly struct SharedFragments(ArrayView<uint> a, ArrayView<uint> b, int aTile, int bTile) : IMmaFragments
        {
            public MmaFragmentA A(int lane) => FragmentA(a, aTile + LaneOffset(lane));

            public MmaFragmentB B(int lane) => FragmentB(b, bTile + LaneOffset(lane));
        }

        /// <summary><paramref name="at"/> is row g's word t of the tile; row g + 8 is 8 rows down, columns 2t + 8 are 4 words on.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static MmaFragmentA FragmentA(ArrayView<uint> a, int at) => new()
        {
            A0 = a[at],
            A1 = a[at + LowerRows * Pitch],
            A2 = a[at + HighHalfWords],
            A3 = a[at + LowerRows * Pitch + HighHalfWords],
        };

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static MmaFragmentB FragmentB(ArrayView<uint> b, int at) => new()
        {
            B0 = b[at],
            B1 = b[at + HighHalfWords],
        };
    }

    /// <summary>
    /// y = sum + bias + residual, narrowed to 16 bits, two channels per word; returns the moments of what it stored
    /// in each of the lane's two columns.
    /// </summary>
    private readonly struct Epilogue
    {
        private readonly Conv2dParams _p;
        private readonly OutputRows _rows;
        private readonly int _rowsInTile;
        /// <summary>Real output channels: the bias's length, and the channels an fp32 NCHW output holds.</summary>
        private readonly int _realChannels;
        /// <summary>Element offset from an NHWC pixel index to channel 0 of that pixel in an fp32 NCHW output.</summary>
        private readonly int _planeShift;
        private readonly int _plane;
        private readonly ArrayView<float> _bias;
        private readonly ArrayView<uint> _residual;
        private readonly ArrayView<uint> _output;

        public Epilogue(Conv2dParams p, OutputRows rows, int batch, int rowsInTile, int realChannels, ArrayView<float> bias,
            ArrayView<uint> residual, ArrayView<uint> output)
        {
            _p = p;
            _rows = rows;
            _rowsInTile = rowsInTile;
            _realChannels = realChannels;
            _plane = p.OutHeight * p.OutWidth;
            _planeShift = batch * (realChannels - 1) * _plane;
            _bias = bias;
            _residual = residual;
            _output = output;
        }

        /// <summary>One MMA column of the warp's tile: the four 16-row strips' tiles, rows (tile-local) row and row + 8 in each.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public ColumnPairMoments Store<TFormat>(TFormat format, in MmaAccumulator m0, in MmaAccumulator m1,
            in MmaAccumulator m2, in MmaAccumulator m3, int row, int column) where TFormat : struct, IHalfFormat
        {
            var moments = default(ColumnPairMoments);
            if (column >= _p.OutChannels) return moments;
            float biasEven = _p.HasBias != 0 && column < _realChannels ? _bias[column] : 0f;
            float biasOdd = _p.HasBias != 0 && column + 1 < _realChannels ? _bias[column + 1] : 0f;
            Pair(format, row, column, m0.C0 + biasEven, m0.C1 + biasOdd, ref moments);
            Pair(format, row + LowerRows, column, m0.C2 + biasEven, m0.C3 + biasOdd, ref moments);
            Pair(format, row + MmaRows, column, m1.C0 + biasEven, m1.C1 + biasOdd, ref moments);
            Pair(format, row + MmaRows + LowerRows, column, m1.C2 + biasEven, m1.C3 + biasOdd, ref moments);
            Pair(format, row + 2 * MmaRows, column, m2.C0 + biasEven, m2.C1 + biasOdd, ref moments);
            Pair(format, row + 2 * MmaRows + LowerRows, column, m2.C2 + biasEven, m2.C3 + biasOdd, ref moments);
            Pair(format, row + 3 * MmaRows, column, m3.C0 + biasEven, m3.C1 + biasOdd, ref moments);
            Pair(format, row + 3 * MmaRows + LowerRows, column, m3.C2 + biasEven, m3.C3 + biasOdd, ref moments);
            return moments;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Pair<TFormat>(TFormat format, int row, int column, float even, float odd, ref ColumnPairMoments moments)
            where TFormat : struct, IHalfFormat
        {
            if (row >= _rowsInTile) return;
            int pixel = _rows.Of(row);
            if (_p.OutputF32 != 0)
            {
                // No residual here (the launcher refuses it); moments of the fp32 values as stored.
                int at = pixel + _planeShift + column * _plane;
                if (column < _realChannels) _output[at] = Interop.FloatAsInt(even);
                if (column + 1 < _realChannels) _output[at + _plane] = Interop.FloatAsInt(odd);
                moments.Even.Add(even);
                moments.Odd.Add(odd);
                return;
            }
            int word = (pixel * _p.OutChannels + column) / ElementsPerWord;
            if (_p.HasResidual != 0)
            {
                uint r = _residual[word];
                even += format.Widen(HalfWords.Low(r));
                odd += format.Widen(HalfWords.High(r));
            }
            uint evenBits = format.Narrow(even);
            uint oddBits = format.Narrow(odd);
            _output[word] = HalfWords.Pack(evenBits, oddBits);
            // The moments are those of the stored values, as a statistics pass over the output would see them.
            moments.Even.Add(format.Widen(evenBits));
            moments.Odd.Add(format.Widen(oddBits));
        }
    }
}

/// <summary>
/// The GEMM geometry of <see cref="Conv2dTensorCoreGpu"/>, shared by the kernel and its launcher (kernel classes
/// expose only kernels).
/// </summary>
internal static class Conv2dTensorCoreGeometry
{
    private const int SubPixelPhases = 4;
    private const int SubPixelKernel = 2;

    /// <summary>Output phases: 4 for a sub-pixel upsampling conv, else 1.</summary>
    public static int Phases(in Conv2dParams p) => p.SubPixel != 0 ? SubPixelPhases : 1;


    /// <summary>Tiles of <see cref="BlockM"/> output pixels per image, over all phases.</summary>
    public static int TilesPerImage(in Conv2dParams p)
    {
        var gemm = GemmConv(p, 0);
        return Phases(p) * DeviceMath.CeilDiv(gemm.OutHeight * gemm.OutWidth, Conv2dTensorCoreGpu.BlockM);
    }

    /// <summary>
    /// The conv the GEMM computes: the conv itself, or for phase (py, px) of a sub-pixel conv a 2x2 conv of the
    /// input (not upsampled) over the phase's H x W pixels, padded 1 - py on top and 1 - px on the left.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Conv2dParams GemmConv(Conv2dParams p, int phase)
    {
        if (p.SubPixel == 0) return p;
        var g = p;
        g.Kernel = SubPixelKernel;
        g.Stride = 1;
        g.PadTop = 1 - phase / 2;
        g.PadLeft = 1 - phase % 2;
        g.OutHeight = p.OutHeight / 2;
        g.OutWidth = p.OutWidth / 2;
        g.Upsample2x = 0;
        return g;
    }
}

/// <summary>
/// Loads each tensor-core conv kernel once for one accelerator, on its first use (a backend storing bf16 never
/// compiles the fp16 one), and launches the one for a storage format.
/// </summary>
internal sealed class Conv2dTensorCoreLauncher(Accelerator accelerator, AcceleratorStream stream)
{
    private readonly FormatKernels<Action<AcceleratorStream, KernelConfig, Conv2dParams, ArrayView<uint>, ArrayView<uint>,
        ArrayView<float>, ArrayView<uint>, ArrayView<uint>, ArrayView<float>>> _kernels = new(
        () => accelerator.LoadKernel<Conv2dParams, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, ArrayView<uint>, ArrayView<uint>,
            ArrayView<float>>(Conv2dTensorCoreGpu.Bf16),
        () => accelerator.LoadKernel<Conv2dParams, ArrayView<uint>, ArrayView<uint>, ArrayView<float>, ArrayView<uint>, ArrayView<uint>,
            ArrayView<float>>(Conv2dTensorCoreGpu.F16));

    /// <summary>
    /// Runs the conv in bf16 (<paramref name="bf16"/>) or fp16 storage. Channel counts in <paramref name="p"/> are
    /// the padded storage counts; <paramref name="bias"/> (one entry per weight row), <paramref name="residual"/> and
    /// <paramref name="moments"/> ([batch, TilesPerImage, Cout, 3]) are used only when their flags are set (pass any
    /// view otherwise). With OutputF32, <paramref name="output"/> holds the fp32 bits of an NCHW tensor.
    /// </summary>
    public void Run(bool bf16, in Conv2dParams p, ArrayView<uint> input, ArrayView<uint> weight, ArrayView<float> bias,
        ArrayView<uint> residual, ArrayView<uint> output, ArrayView<float> moments)
    {
        if (p.InChannels % Conv2dTensorCoreGpu.ChannelAlignment != 0 || p.OutChannels % Conv2dTensorCoreGpu.ChannelAlignment != 0)
            throw new ArgumentException(
                $"tensor-core conv needs channel counts padded to {Conv2dTensorCoreGpu.ChannelAlignment}: in {p.InChannels}, out {p.OutChannels}",
                nameof(p));
        if (p.Batch * p.OutHeight * p.OutWidth == 0) return;
        if (p.WeightRows < 0 || p.WeightRows > p.OutChannels)
            throw new ArgumentException($"tensor-core conv: {p.WeightRows} weight rows for {p.OutChannels} output channels", nameof(p));
        if (p.SubPixel != 0 && (p.Upsample2x == 0 || p.Kernel != 3 || p.Stride != 1 || p.PadTop != 1 || p.PadLeft != 1
                                || p.OutHeight % 2 != 0 || p.OutWidth % 2 != 0))
            throw new ArgumentException("a sub-pixel conv is a 3x3, stride 1, pad 1 conv of a 2x upsampled input", nameof(p));
        if (p.OutputF32 != 0 && p.HasResidual != 0)
            throw new ArgumentException("tensor-core conv: a residual needs the 16-bit output, not OutputF32", nameof(p));
        int phases = Conv2dTensorCoreGeometry.Phases(p);
        var grid = new Index3D(p.Batch * Conv2dTensorCoreGeometry.TilesPerImage(p) / phases,
            DeviceMath.CeilDiv(p.OutChannels, Conv2dTensorCoreGpu.BlockN), phases);
        var config = new KernelConfig(grid, new Index3D(Conv2dTensorCoreGpu.GroupSize, 1, 1));
        _kernels.Get(bf16)(stream, config, p, input, weight, bias, residual, output, moments);
    }
}
